import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Wakeable, backoffMs, jittered } from './wakeable.js';

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

describe('jittered()', () => {
  it('spreads a delay over its upper half, ends included as the random source allows', () => {
    assert.equal(
      jittered(1_000, () => 0),
      500,
    );
    assert.equal(
      jittered(1_000, () => 0.999_999),
      999,
    );
    assert.equal(
      jittered(60_000, () => 0.5),
      45_000,
    );
    assert.equal(
      jittered(0, () => 0.7),
      0,
    );
  });
  it('with the real random source, 10,000 devices redialling after 1 s spread over the whole half second', () => {
    const delays = Array.from({ length: 10_000 }, () => jittered(1_000));
    assert.ok(delays.every((d) => d >= 500 && d < 1_000));
    // Ten 50 ms slots each hold about a tenth: none empty, none more than twice its share.
    const slots = new Array(10).fill(0);
    for (const d of delays) slots[Math.floor((d - 500) / 50)] += 1;
    assert.ok(
      slots.every((n) => n > 500 && n < 2_000),
      String(slots),
    );
  });
});
