import assert from 'node:assert/strict';
import { test } from 'node:test';
import { windowInput } from './window-input.js';

test('a window form becomes the request body, its duration read as the CLI reads it', () => {
  assert.deepEqual(windowInput({ cron: ' 0 2 * * 1-5 ', duration: '1h30m', timezone: 'Europe/Paris ' }), {
    ok: true,
    body: { cron: '0 2 * * 1-5', durationSeconds: 5400, timezone: 'Europe/Paris' },
  });
  assert.deepEqual(windowInput({ cron: '0 2 * * *', duration: '600', timezone: 'UTC' }), {
    ok: true,
    body: { cron: '0 2 * * *', durationSeconds: 600, timezone: 'UTC' },
  });
});

test('each wrong field is named with why, before any request', () => {
  const cases: [Parameters<typeof windowInput>[0], string, RegExp][] = [
    [{ cron: '0 2 * * *', duration: 'two hours', timezone: 'UTC' }, 'duration', /invalid duration "two hours"/],
    [{ cron: '0 2 * * *', duration: '30s', timezone: 'UTC' }, 'duration', /between 1m and 7d \(30 s given\)/],
    [{ cron: '0 2 * * *', duration: '8d', timezone: 'UTC' }, 'duration', /between 1m and 7d/],
    [{ cron: '  ', duration: '2h', timezone: 'UTC' }, 'cron', /cron expression/],
    [{ cron: '0 2 * * *', duration: '2h', timezone: '' }, 'timezone', /IANA time zone/],
  ];
  for (const [fields, field, message] of cases) {
    const result = windowInput(fields);
    assert.equal(result.ok, false, JSON.stringify(fields));
    if (result.ok) continue;
    assert.equal(result.field, field, JSON.stringify(fields));
    assert.match(result.message, message);
  }
});
