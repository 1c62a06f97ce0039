import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeUpdateWindow, formatMb, formatUsage, short, timeAgo } from './format.js';

test('timeAgo speaks in the largest whole unit', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  const cases: [string | null, string][] = [
    [null, 'never'],
    ['garbage', 'unknown'],
    ['2026-03-01T11:59:50Z', 'just now'],
    ['2026-03-01T12:00:30Z', 'just now'],
    ['2026-03-01T11:55:00Z', '5 min ago'],
    ['2026-03-01T09:00:00Z', '3 h ago'],
    ['2026-02-27T12:00:00Z', '2 d ago'],
  ];
  for (const [iso, want] of cases) assert.equal(timeAgo(iso, now), want, String(iso));
});

test('sizes read in MB or GB, usage with its share', () => {
  assert.equal(formatMb(512), '512 MB');
  assert.equal(formatMb(3584), '3.5 GB');
  assert.equal(formatUsage(null, 100), null);
  assert.equal(formatUsage(300, null), '300 MB');
  assert.equal(formatUsage(1024, 4096), '1.0 GB / 4.0 GB (25 %)');
  assert.equal(short('0123456789abcdef'), '0123456');
  assert.equal(short(null), '—');
});

test('a maintenance window in words: whose, and when a waiting update applies', () => {
  const window = { cron: '0 2 * * *', durationSeconds: 7200, timezone: 'Europe/Paris' };
  assert.equal(describeUpdateWindow({ updateWindow: null, updateWindowOpensAt: null }), 'none: updates apply at once');
  assert.equal(
    describeUpdateWindow({ updateWindow: { ...window, source: 'fleet' }, updateWindowOpensAt: null }),
    '0 2 * * * (Europe/Paris), open 2h; the fleet’s',
  );
  assert.equal(
    describeUpdateWindow({
      updateWindow: { ...window, source: 'device' },
      updateWindowOpensAt: '2026-12-02T01:00:00.000Z',
    }),
    '0 2 * * * (Europe/Paris), open 2h; its own. An update waits for it; it opens 2026-12-02T01:00:00.000Z',
  );
});
