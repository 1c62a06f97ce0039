import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loopHealthy, type LoopTimes } from './health.js';

const MIN = 60_000;
const base: LoopTimes = {
  now: 100 * MIN,
  passStartedAt: undefined,
  lastPassEndedAt: 100 * MIN,
  backoffUntil: 0,
  pollIntervalMs: MIN,
};

describe('loopHealthy()', () => {
  const cases: Array<{ name: string; times: Partial<LoopTimes>; expect: boolean }> = [
    { name: 'a pass just ended', times: {}, expect: true },
    { name: 'a pass running for 29 min', times: { passStartedAt: 71 * MIN }, expect: true },
    { name: 'a pass stuck for 30 min', times: { passStartedAt: 70 * MIN }, expect: false },
    { name: 'no pass for 2 intervals + 59 s', times: { lastPassEndedAt: 100 * MIN - 2 * MIN - 59_000 }, expect: true },
    { name: 'no pass for 2 intervals + 60 s', times: { lastPassEndedAt: 100 * MIN - 3 * MIN }, expect: false },
    {
      name: 'a crash-loop hold-back is not a missing pass',
      times: { lastPassEndedAt: 50 * MIN, backoffUntil: 99 * MIN },
      expect: true,
    },
    {
      name: 'but passes are missed once it is over',
      times: { lastPassEndedAt: 50 * MIN, backoffUntil: 96 * MIN },
      expect: false,
    },
  ];
  for (const c of cases) it(c.name, () => assert.equal(loopHealthy({ ...base, ...c.times }), c.expect));
});
