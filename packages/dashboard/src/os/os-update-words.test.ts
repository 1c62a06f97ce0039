import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Device } from '@flotilla/protocol';
import { describeOsUpdate } from './os-update-words.js';

const update = (u: Partial<NonNullable<Device['osUpdate']>>): Device['osUpdate'] => ({
  phase: 'idle',
  version: '1.1.0',
  progress: null,
  errorCode: null,
  error: null,
  ...u,
});

test('an OS update in words: none, under way (with the percent while writing), and how it ended', () => {
  const none = { progressText: null, percent: null, result: null, failed: false };
  const cases: [Device['osUpdate'], ReturnType<typeof describeOsUpdate>][] = [
    [null, none],
    [update({ phase: 'idle' }), none],
    [
      update({ phase: 'writing', progress: 41.6 }),
      { progressText: 'writing the image to the inactive slot (OS 1.1.0)', percent: 42, result: null, failed: false },
    ],
    [
      update({ phase: 'writing', progress: null, version: null }),
      {
        progressText: 'writing the image to the inactive slot (the new OS)',
        percent: null,
        result: null,
        failed: false,
      },
    ],
    [
      update({ phase: 'trial', progress: 100 }),
      { progressText: 'booted into it on trial (OS 1.1.0)', percent: null, result: null, failed: false },
    ],
    [
      update({ phase: 'committed' }),
      { progressText: null, percent: null, result: 'committed OS 1.1.0', failed: false },
    ],
    [
      update({ phase: 'rolled-back', errorCode: 'OS_TRIAL_UNHEALTHY', error: 'the agent did not come up' }),
      {
        progressText: null,
        percent: null,
        result: 'rolled back from OS 1.1.0: the agent did not come up (OS_TRIAL_UNHEALTHY)',
        failed: true,
      },
    ],
    [
      update({ phase: 'rolled-back' }),
      { progressText: null, percent: null, result: 'rolled back from OS 1.1.0', failed: true },
    ],
    [
      update({ phase: 'failed', errorCode: 'OS_UPDATE_RETRIES_EXHAUSTED', error: null }),
      { progressText: null, percent: null, result: 'OS 1.1.0 failed: OS_UPDATE_RETRIES_EXHAUSTED', failed: true },
    ],
  ];
  for (const [input, expected] of cases) assert.deepEqual(describeOsUpdate(input), expected, JSON.stringify(input));
});
