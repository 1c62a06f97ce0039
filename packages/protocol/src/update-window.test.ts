import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from './errors.js';
import {
  checkUpdateWindow,
  formatDurationSeconds,
  parseDurationSeconds,
  updateWindowState,
  type UpdateWindow,
  type WindowState,
} from './update-window.js';

const at = (iso: string): number => Date.parse(iso);
const open = (closes: string): WindowState => ({ open: true, closesAt: at(closes) });
const closed = (opens: string | null): WindowState => ({ open: false, opensAt: opens === null ? null : at(opens) });

const w = (cron: string, durationSeconds: number, timezone: string): UpdateWindow => ({
  cron,
  durationSeconds,
  timezone,
});

test('window state: table of times, zones, midnight crossings and DST changes', () => {
  const nightlyParis = w('0 2 * * *', 2 * 3600, 'Europe/Paris');
  const lateUtc = w('0 23 * * *', 3 * 3600, 'UTC');
  const cases: Array<[string, UpdateWindow, string, WindowState]> = [
    // Paris is UTC+1 in winter: 02:00-04:00 local is 01:00-03:00 UTC.
    ['before it opens', nightlyParis, '2026-12-01T00:59:59Z', closed('2026-12-01T01:00:00Z')],
    ['the opening instant is inside', nightlyParis, '2026-12-01T01:00:00Z', open('2026-12-01T03:00:00Z')],
    ['in the middle', nightlyParis, '2026-12-01T02:30:00Z', open('2026-12-01T03:00:00Z')],
    ['the closing instant is outside', nightlyParis, '2026-12-01T03:00:00Z', closed('2026-12-02T01:00:00Z')],
    // Summer: UTC+2, so the same local window is an hour earlier in UTC.
    ['summer time', nightlyParis, '2026-07-01T00:30:00Z', open('2026-07-01T02:00:00Z')],
    // 23:00 + 3 h crosses midnight: open at 01:00 the next day, closed at 02:00.
    ['after midnight, still open', lateUtc, '2026-12-02T01:00:00Z', open('2026-12-02T02:00:00Z')],
    ['after midnight, closed', lateUtc, '2026-12-02T02:00:00Z', closed('2026-12-02T23:00:00Z')],
    [
      'the same in another zone',
      w('0 23 * * *', 3 * 3600, 'Asia/Tokyo'),
      '2026-12-01T15:30:00Z',
      open('2026-12-01T17:00:00Z'),
    ],
    // DST starts in Paris on 2026-03-29: 02:00 jumps to 03:00, so 02:30 does not exist; it opens at 03:30 CEST.
    [
      'spring forward: a skipped time',
      w('30 2 * * *', 3600, 'Europe/Paris'),
      '2026-03-29T01:00:00Z',
      closed('2026-03-29T01:30:00Z'),
    ],
    [
      'spring forward: open an hour later',
      w('30 2 * * *', 3600, 'Europe/Paris'),
      '2026-03-29T02:00:00Z',
      open('2026-03-29T02:30:00Z'),
    ],
    // DST ends on 2026-10-25: 02:30 happens twice (CEST, then CET); the window is open after both.
    [
      'fall back: first 02:30',
      w('30 2 * * *', 1800, 'Europe/Paris'),
      '2026-10-25T00:45:00Z',
      open('2026-10-25T01:00:00Z'),
    ],
    [
      'fall back: second 02:30',
      w('30 2 * * *', 1800, 'Europe/Paris'),
      '2026-10-25T01:45:00Z',
      open('2026-10-25T02:00:00Z'),
    ],
    [
      'fall back: closed after',
      w('30 2 * * *', 1800, 'Europe/Paris'),
      '2026-10-25T02:00:00Z',
      closed('2026-10-26T01:30:00Z'),
    ],
    // Weekdays only: Friday night's window, then nothing until Monday.
    ['weekdays: Saturday', w('0 1 * * 1-5', 3600, 'UTC'), '2026-12-05T12:00:00Z', closed('2026-12-07T01:00:00Z')],
    // Six fields: seconds first.
    ['seconds', w('30 15 10 * * *', 60, 'UTC'), '2026-12-01T10:15:29Z', closed('2026-12-01T10:15:30Z')],
    ['seconds, open', w('30 15 10 * * *', 60, 'UTC'), '2026-12-01T10:16:00Z', open('2026-12-01T10:16:30Z')],
  ];
  for (const [label, window, now, expected] of cases)
    assert.deepEqual(updateWindowState(window, at(now)), expected, label);
});

test('overlapping occurrences chain to when the last one closes', () => {
  // Hourly, 90 minutes each, from 01:00 to 03:00: the last opening (03:00) closes at 04:30.
  const state = updateWindowState(w('0 1-3 * * *', 5400, 'UTC'), at('2026-12-01T01:10:00Z'));
  assert.deepEqual(state, open('2026-12-01T04:30:00Z'));
});

test('a window denser than its duration is open, for at least a hundred occurrences', () => {
  const started = performance.now();
  const state = updateWindowState(w('*/10 * * * *', 900, 'UTC'), at('2026-12-01T10:07:00Z'));
  // 10:00 opened it; 100 chained occurrences later (02:40 the next day) it would close 15 minutes after.
  assert.deepEqual(state, open('2026-12-02T02:55:00Z'));
  // Generous: it takes a few ms, but CI machines are loaded; the bound only catches an unbounded walk.
  assert.ok(performance.now() - started < 2_000, 'cheap enough for every reconcile pass');
});

test('checkUpdateWindow refuses what cannot be evaluated, with UPDATE_WINDOW_INVALID', () => {
  const bad: Array<[UpdateWindow, RegExp]> = [
    [w('0 2 * *', 3600, 'UTC'), /invalid cron expression "0 2 \* \*"/],
    [w('0 25 * * *', 3600, 'UTC'), /invalid cron expression/],
    [w('* * * * * * *', 3600, 'UTC'), /invalid cron expression/],
    [w('0 2 * * *', 3600, 'Europe/Atlantis'), /unknown time zone "Europe\/Atlantis"/],
    [w('0 0 31 2 *', 3600, 'UTC'), /never occurs/],
  ];
  for (const [window, message] of bad)
    assert.throws(
      () => checkUpdateWindow(window),
      (e: unknown) => e instanceof FlotillaError && e.code === 'UPDATE_WINDOW_INVALID' && message.test(e.message),
      window.cron,
    );
  checkUpdateWindow(w('0 2 * * *', 3600, 'Europe/Paris'));
  checkUpdateWindow(w('0 30 2 * * 1-5', 60, 'UTC'));
});

test('durations: parsed and formatted back', () => {
  const cases: Array<[string, number, string]> = [
    ['2h', 7200, '2h'],
    ['90m', 5400, '1h30m'],
    ['1h30m', 5400, '1h30m'],
    ['45s', 45, '45s'],
    ['3600', 3600, '1h'],
    ['1d2h', 93_600, '1d2h'],
  ];
  for (const [text, seconds, formatted] of cases) {
    assert.equal(parseDurationSeconds(text), seconds, text);
    assert.equal(formatDurationSeconds(seconds), formatted, text);
  }
  for (const bad of ['', 'h', '2 hours', '-5m', '1.5h'])
    assert.throws(() => parseDurationSeconds(bad), /invalid duration/, bad);
});
