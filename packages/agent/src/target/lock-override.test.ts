import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ForcedUpdate, overrideLockConfigured } from './lock-override.js';

describe('overrideLockConfigured()', () => {
  const cases: Array<{ config: Record<string, string> | undefined; expect: boolean }> = [
    { config: undefined, expect: false },
    { config: {}, expect: false },
    { config: { BALENA_SUPERVISOR_OVERRIDE_LOCK: '1' }, expect: true },
    { config: { RESIN_SUPERVISOR_OVERRIDE_LOCK: '1' }, expect: true },
    { config: { BALENA_SUPERVISOR_OVERRIDE_LOCK: '0' }, expect: false },
    { config: { BALENA_SUPERVISOR_OVERRIDE_LOCK: 'true' }, expect: false },
    { config: { OVERRIDE_LOCK: '1' }, expect: false },
  ];
  for (const c of cases)
    it(`${JSON.stringify(c.config)} → ${c.expect}`, () => {
      const device = c.config === undefined ? undefined : { name: 'd', config: c.config, apps: {} };
      assert.equal(overrideLockConfigured(device), c.expect);
    });
});

/**
 * Each case is a chain of events on one ForcedUpdate and the expected `active()` after each. Events: `request@t`
 * (managed: a fetch is coming), `requestLocal@t` (unmanaged), `poll@t` or `poll@t:K` (a poll that started at t ended
 * with target K stored, A by default), `pass` (a
 * pass claims, then converges), `pass:waiting` (a pass claims and ends without converging), `race` (a pass claims,
 * a new request comes at 50, then the pass converges).
 */
describe('ForcedUpdate', () => {
  const cases: Array<{ name: string; events: string[]; active: boolean[] }> = [
    { name: 'no request: nothing overridden', events: ['pass'], active: [false] },
    {
      name: 'a pass before the fetch cannot settle the request',
      events: ['request@10', 'pass', 'poll@5', 'pass', 'poll@10', 'pass'],
      active: [true, true, true, true, true, false],
    },
    {
      name: 'a pass that does not converge (lock wait) keeps the override',
      events: ['request@10', 'poll@20', 'pass:waiting', 'pass'],
      active: [true, true, true, false],
    },
    { name: 'unmanaged: the stored target is the one', events: ['requestLocal@10', 'pass'], active: [true, false] },
    {
      name: 'a newer request is not settled by the pass that claimed the older one',
      events: ['request@10', 'poll@20', 'race', 'poll@60', 'pass'],
      active: [true, true, true, true, false],
    },
    {
      name: 'the same target fetched again keeps the override until a pass converges',
      events: ['request@10', 'poll@20', 'pass:waiting', 'poll@30', 'pass'],
      active: [true, true, true, true, false],
    },
    {
      name: 'another target fetched after the forced one ends the request: a force is for one target',
      events: ['request@10', 'poll@20:A', 'pass:waiting', 'poll@30:B', 'pass'],
      active: [true, true, true, false, false],
    },
    {
      name: 'a poll that started before the request does not fix its target',
      events: ['request@10', 'poll@5:A', 'poll@20:B', 'pass'],
      active: [true, true, true, false],
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const force = new ForcedUpdate();
      const seen = c.events.map((event) => {
        const [kind, at = ''] = event.split('@');
        const [time, key = 'A'] = at.split(':');
        const t = Number(time);
        if (kind === 'request') force.requested(t, false);
        else if (kind === 'requestLocal') force.requested(t, true);
        else if (kind === 'poll') force.polled(t, key);
        else if (kind === 'pass') force.settle(force.claim(), true);
        else if (kind === 'pass:waiting') force.settle(force.claim(), false);
        else if (kind === 'race') {
          const claimed = force.claim();
          force.requested(50, false);
          force.settle(claimed, true);
        }
        return force.active();
      });
      assert.deepEqual(seen, c.active);
    });
});
