import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TargetDevice } from '@flotilla/protocol';
import { deltasEnabled } from './delta-fetcher.js';

const device = (config: Record<string, string>) => ({ config }) as unknown as TargetDevice;

test('deltas are on by default; SUPERVISOR_DELTA=0 under any prefix turns them off', () => {
  const cases: Array<[Record<string, string> | undefined, boolean]> = [
    [undefined, true],
    [{}, true],
    [{ BALENA_SUPERVISOR_DELTA: '1' }, true],
    [{ BALENA_SUPERVISOR_DELTA: '0' }, false],
    [{ FLOTILLA_SUPERVISOR_DELTA: '0' }, false],
    [{ RESIN_SUPERVISOR_DELTA: 'false' }, false],
    [{ BALENA_SUPERVISOR_POLL_INTERVAL: '0' }, true],
  ];
  for (const [config, expected] of cases)
    assert.equal(deltasEnabled(config ? device(config) : undefined), expected, JSON.stringify(config));
});
