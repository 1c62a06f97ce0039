import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { TargetModel, TargetService } from '../reconcile/state.js';
import { openStore, type Store } from '../store/store.js';
import { AgentActions, startOrder, type AgentActionsDeps } from './agent-actions.js';
import { StopHolds } from './stop-holds.js';

const svc = (serviceName: string, dependsOn: string[] = []): TargetService =>
  ({ serviceName, dependsOn }) as TargetService;

type HoldStore = Pick<Store, 'getStopHolds' | 'setStopHolds'>;

/** In-memory hold store that counts writes (each one is an fsync on the device). */
function memoryHolds(): HoldStore & { writes: number } {
  let holds: Record<string, string> = {};
  return {
    writes: 0,
    getStopHolds: () => ({ ...holds }),
    setStopHolds(next) {
      this.writes += 1;
      holds = { ...next };
    },
  };
}

const webService = (configHash = 'h1'): TargetService =>
  ({
    appId: 7,
    serviceName: 'web',
    commit: 'c1',
    configHash,
    dependsOn: [],
    running: true,
  }) as unknown as TargetService;
const appTarget = (services: TargetService[]): TargetModel =>
  ({
    apps: [{ appId: 7, appUuid: 'u', name: 'app', commit: 'c1', releaseId: 1, services, volumes: [], networks: [] }],
  }) as unknown as TargetModel;

/** AgentActions over a one-container engine that records stop/start calls; only what serviceAction uses. */
function actionsFor(
  store: HoldStore,
  target: () => TargetModel,
  calls: string[] = [],
): { actions: AgentActions; holds: StopHolds } {
  const container = { id: 'c-web', appId: 7, serviceName: 'web', state: 'running', createdAt: 1 };
  const engine = {
    snapshot: async () => ({ containers: [container], volumes: [], networks: [], images: [] }),
    stopContainer: async (id: string) => void calls.push(`stop ${id}`),
    startContainer: async (id: string) => void calls.push(`start ${id}`),
  } as unknown as ContainerEngine;
  const holds = new StopHolds(store);
  const actions = new AgentActions({
    engine,
    holds,
    namespace: 'unit-',
    servicesDir: '/nonexistent',
    view: () => ({ current: undefined, target: target(), statuses: new Map(), progress: new Map(), failed: false }),
    lockOverridden: () => false,
    exclusive: (fn: () => Promise<unknown>) => fn(),
    wake: () => undefined,
    system: () => undefined,
  } as unknown as AgentActionsDeps);
  return { actions, holds };
}

test('startOrder puts dependencies first and survives cycles and unknown names', () => {
  const cases: Array<{ services: TargetService[]; expect: string[] }> = [
    { services: [svc('web', ['db']), svc('db')], expect: ['db', 'web'] },
    { services: [svc('a', ['b']), svc('b', ['c']), svc('c')], expect: ['c', 'b', 'a'] },
    { services: [svc('a', ['ghost']), svc('b')], expect: ['a', 'b'] },
    { services: [svc('a', ['b']), svc('b', ['a']), svc('c')], expect: ['c', 'a', 'b'] },
  ];
  for (const c of cases)
    assert.deepEqual(
      startOrder(c.services).map((s) => s.serviceName),
      c.expect,
    );
});

test('a stopped service is held until started again or until its target changes', async () => {
  const calls: string[] = [];
  const web = webService();
  let target = appTarget([web]);
  const { actions, holds } = actionsFor(memoryHolds(), () => target, calls);

  await actions.serviceAction('stop', 7, 'web', false);
  assert.deepEqual([...holds.heldStopped(target)], ['7/web']);
  assert.deepEqual([...holds.heldStopped(target)], ['7/web'], 'still held on the next pass');
  await actions.serviceAction('start', 7, 'web', false);
  assert.deepEqual([...holds.heldStopped(target)], []);

  await actions.serviceAction('stop', 7, 'web', false);
  target = { apps: [{ ...target.apps[0]!, services: [{ ...web, configHash: 'h2' }] }] } as TargetModel;
  assert.deepEqual([...holds.heldStopped(target)], [], 'a new target for the service releases the hold');
  await actions.serviceAction('stop', 7, 'web', false);
  assert.deepEqual([...holds.heldStopped({ apps: [] })], [], 'so does the service leaving the target');
  assert.deepEqual(calls, ['stop c-web', 'start c-web', 'stop c-web', 'stop c-web']);
  await assert.rejects(actions.serviceAction('stop', 8, 'web', false), /app 8 is not on this device/);
});

test('holds are written through only when they change, and re-created StopHolds load them', async () => {
  const store = memoryHolds();
  const target = appTarget([webService()]);
  const { actions, holds } = actionsFor(store, () => target);
  assert.deepEqual([...holds.heldStopped(target)], []);
  await actions.serviceAction('start', 7, 'web', false);
  await actions.serviceAction('restart', 7, 'web', false);
  assert.equal(store.writes, 0, 'nothing held, nothing to release: no write');
  await actions.serviceAction('stop', 7, 'web', false);
  await actions.serviceAction('stop', 7, 'web', false);
  assert.equal(store.writes, 1, 'stopping a held service again changes nothing');
  for (let pass = 0; pass < 3; pass++) holds.heldStopped(target);
  assert.equal(store.writes, 1, 'planning passes over an unchanged target do not write');
  assert.deepEqual(store.getStopHolds(), { '7/web': 'c1:h1' });
  assert.deepEqual(
    [...actionsFor(store, () => target).holds.heldStopped(target)],
    ['7/web'],
    'new StopHolds start held',
  );
  await actions.serviceAction('start', 7, 'web', false);
  assert.equal(store.writes, 2);
  assert.deepEqual(store.getStopHolds(), {});
});

test('a hold survives an agent restart over the same data dir until the service gets a new target', async () => {
  const dir = await tempDir('flotilla-agent-holds-');
  try {
    let target = appTarget([webService('h1')]);
    const first = openStore(dir.path);
    await actionsFor(first, () => target).actions.serviceAction('stop', 7, 'web', false);
    first.close();

    // The restarted agent: same data dir, same target; the hold holds for pass after pass.
    const second = openStore(dir.path);
    const restarted = actionsFor(second, () => target).holds;
    assert.deepEqual([...restarted.heldStopped(target)], ['7/web']);
    assert.deepEqual([...restarted.heldStopped(target)], ['7/web']);
    target = appTarget([webService('h2')]);
    assert.deepEqual([...restarted.heldStopped(target)], [], 'a new config for the service releases the hold');
    second.close();

    // ...and the release is durable too: the next restart does not bring the hold back.
    const third = openStore(dir.path);
    assert.deepEqual(third.getStopHolds(), {});
    const old = appTarget([webService('h1')]);
    assert.deepEqual([...actionsFor(third, () => old).holds.heldStopped(old)], [], 'even under the old signature');
    third.close();
  } finally {
    await dir.remove();
  }
});
