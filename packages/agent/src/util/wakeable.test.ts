import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Wakeable, backoffMs } from './wakeable.js';

describe('backoffMs()', () => {
  const cases: Array<[number, number, number]> = [
    [0, 900_000, 0],
    [1, 900_000, 15_000],
    [2, 900_000, 30_000],
    [3, 900_000, 60_000],
    [10, 900_000, 900_000],
    [3, 20_000, 20_000],
  ];
  for (const [failures, cap, expected] of cases)
    it(`${failures} failures, cap ${cap} → ${expected}`, () => assert.equal(backoffMs(failures, cap), expected));
});

describe('Wakeable', () => {
  it('wake() ends a sleep early, and a wake before the sleep is not lost', async () => {
    const w = new Wakeable();
    const signal = new AbortController().signal;
    const started = Date.now();
    setTimeout(() => w.wake(), 20);
    await w.sleep(10_000, signal);
    w.wake();
    await w.sleep(10_000, signal);
    assert.ok(Date.now() - started < 2_000);
  });
});
