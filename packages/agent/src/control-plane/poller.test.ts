import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pollInterval } from './poller.js';

describe('pollInterval()', () => {
  const device = (config: Record<string, string>) => ({ name: 'd', config, apps: {} });
  const cases: Array<[string, Record<string, string> | undefined, number]> = [
    ['no target: config.json/base', undefined, 120_000],
    ['BALENA_ prefix', { BALENA_SUPERVISOR_POLL_INTERVAL: '60000' }, 60_000],
    ['RESIN_ prefix', { RESIN_SUPERVISOR_POLL_INTERVAL: '30000' }, 30_000],
    ['below 10 s ignored', { BALENA_SUPERVISOR_POLL_INTERVAL: '500' }, 120_000],
    ['garbage ignored', { BALENA_SUPERVISOR_POLL_INTERVAL: 'soon' }, 120_000],
  ];
  for (const [name, config, expected] of cases)
    it(name, () => assert.equal(pollInterval(config ? device(config) : undefined, 120_000), expected));
});
