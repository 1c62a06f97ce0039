import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CurrentContainer, TargetModel } from '../reconcile/state.js';
import { containersToFollow } from './follow.js';

const container = (id: string, serviceName: string, state: string, appId = 1): CurrentContainer =>
  ({ id, serviceName, state, appId }) as CurrentContainer;
const target = {
  apps: [{ appId: 1, services: [{ serviceName: 'web', serviceId: 11 }] }],
} as unknown as TargetModel;

describe('containersToFollow()', () => {
  const cases: Array<{ name: string; target: TargetModel | null; containers: CurrentContainer[]; expect: unknown[] }> =
    [
      { name: 'nothing runs', target, containers: [], expect: [] },
      {
        name: 'a running target service gets its service id',
        target,
        containers: [container('a', 'web', 'running')],
        expect: [{ containerId: 'a', serviceName: 'web', serviceId: 11 }],
      },
      {
        name: 'never started: not followed; stopped: still followed (keeps its position)',
        target,
        containers: [container('a', 'web', 'created'), container('b', 'web', 'exited')],
        expect: [{ containerId: 'b', serviceName: 'web', serviceId: 11 }],
      },
      {
        name: 'a service the target no longer names, or another app: no service id',
        target,
        containers: [container('c', 'old', 'running'), container('d', 'web', 'running', 2)],
        expect: [
          { containerId: 'c', serviceName: 'old' },
          { containerId: 'd', serviceName: 'web' },
        ],
      },
      {
        name: 'no target',
        target: null,
        containers: [container('a', 'web', 'running')],
        expect: [{ containerId: 'a', serviceName: 'web' }],
      },
    ];
  for (const c of cases) it(c.name, () => assert.deepEqual(containersToFollow(c.target, c.containers), c.expect));
});
