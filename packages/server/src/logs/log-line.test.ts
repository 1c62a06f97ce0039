import assert from 'node:assert/strict';
import { it } from 'node:test';
import { deviceLogLineSchema } from '@flotilla/protocol';
import { asDeviceLogLine } from './log-line.js';

const cases: unknown[] = [
  { message: 'ok', timestamp: 1 },
  { message: '', timestamp: 0, isSystem: true, isStdErr: false, serviceId: -3, serviceName: 'main', extra: [1] },
  { message: 'x'.repeat(64 * 1024), timestamp: 1 },
  { message: 'x'.repeat(64 * 1024 + 1), timestamp: 1 },
  { message: 'ok', timestamp: 1, serviceName: 's'.repeat(63) },
  { message: 'ok', timestamp: 1, serviceName: 's'.repeat(64) },
  { message: 'ok', timestamp: -1 },
  { message: 'ok', timestamp: 1.5 },
  { message: 'ok', timestamp: 2 ** 53 - 1 },
  { message: 'ok', timestamp: 2 ** 53 },
  { message: 'ok', timestamp: '1' },
  { message: 'ok' },
  { timestamp: 1 },
  { message: 1, timestamp: 1 },
  { message: null, timestamp: 1 },
  { message: 'ok', timestamp: 1, isSystem: null },
  { message: 'ok', timestamp: 1, isSystem: 'true' },
  { message: 'ok', timestamp: 1, isStdErr: 1 },
  { message: 'ok', timestamp: 1, serviceId: 1.5 },
  { message: 'ok', timestamp: 1, serviceId: '7' },
  { message: 'ok', timestamp: 1, serviceId: null },
  { message: 'ok', timestamp: 1, serviceName: null },
  { message: 'ok', timestamp: 1, serviceName: 7 },
  [{ message: 'ok', timestamp: 1 }],
  [],
  null,
  'line',
  42,
  true,
];

it('asDeviceLogLine accepts exactly what deviceLogLineSchema accepts, and gives the same line', () => {
  const pick = <T>(values: readonly T[]) => values[Math.floor(Math.random() * values.length)];
  const field = () =>
    pick<unknown>([undefined, null, true, false, 0, -1, 1.5, 2 ** 53, 7, '', 'main', 's'.repeat(64), [], {}]);
  const random = Array.from({ length: 2_000 }, () => {
    const line: Record<string, unknown> = {};
    for (const key of ['message', 'timestamp', 'isSystem', 'isStdErr', 'serviceId', 'serviceName', 'other']) {
      const value = field();
      if (value !== undefined) line[key] = value;
    }
    return line;
  });
  let accepted = 0;
  for (const value of [...cases, ...random]) {
    const parsed = deviceLogLineSchema.safeParse(value);
    const mine = asDeviceLogLine(structuredClone(value));
    assert.equal(mine !== undefined, parsed.success, JSON.stringify(value));
    if (parsed.success) {
      accepted += 1;
      assert.deepEqual(mine, parsed.data);
    }
  }
  assert.ok(accepted >= 5, 'the table holds lines that pass');
});
