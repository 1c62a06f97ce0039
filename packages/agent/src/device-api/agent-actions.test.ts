import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { TargetModel, TargetService } from '../reconcile/state.js';
import { openStore, type Store } from '../store/store.js';
import type { PassResult } from '../reconcile/loop.js';
import { AgentActions, type AgentActionsDeps } from './agent-actions.js';
import { PendingRequests } from './pending-requests.js';
import { StopHolds } from './stop-holds.js';

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

const done: PassResult = { outcome: { kind: 'done' }, iterations: 1, stepsExecuted: 1, durationMs: 1 };

/**
 * AgentActions over a one-container engine (read only) and a fake reconcile pass that records what the planner
 * would be asked for at that moment (requests and holds) and answers `answer()`.
 */
function actionsFor(
  store: HoldStore,
  target: () => TargetModel,
  calls: string[] = [],
  answer: () => PassResult = () => done,
): { actions: AgentActions; holds: StopHolds; requests: PendingRequests } {
  const container = { id: 'c-web', appId: 7, serviceName: 'web', state: 'running', createdAt: 1 };
  const engine = {
    snapshot: async () => ({ containers: [container], volumes: [], networks: [], images: [] }),
  } as unknown as ContainerEngine;
  const holds = new StopHolds(store);
  const requests = new PendingRequests();
  const keys = (set: ReadonlySet<string | number>) => [...set].join(',');
  const actions = new AgentActions({
    engine,
    holds,
    requests,
    pass: async () => {
      const r = requests.get();
      const held = keys(holds.heldStopped(target()));
      calls.push(
        `pass stop=[${keys(r.stop)}] start=[${keys(r.start)}] purge=[${keys(r.purge)}] force=[${keys(r.force)}] held=[${held}]`,
      );
      return answer();
    },
    namespace: 'unit-',
    servicesDir: '/nonexistent',
    view: () => ({ current: undefined, target: target(), statuses: new Map(), progress: new Map(), failed: false }),
    lockOverridden: () => false,
    wake: () => undefined,
    system: () => undefined,
  } as unknown as AgentActionsDeps);
  return { actions, holds, requests };
}

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
  assert.deepEqual(calls, [
    'pass stop=[] start=[] purge=[] force=[] held=[7/web]',
    'pass stop=[] start=[7/web] purge=[] force=[] held=[]',
    'pass stop=[] start=[] purge=[] force=[] held=[7/web]',
    'pass stop=[] start=[] purge=[] force=[] held=[7/web]',
  ]);
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

test('each action is a request to the planner, carried out by the next pass; a lock refuses what would kill', async () => {
  const target = appTarget([webService()]);
  const locked: PassResult = {
    outcome: { kind: 'retry-after', ms: 5_000, reason: 'wait update lock held by app 7', lockedApps: [7] },
    iterations: 1,
    stepsExecuted: 0,
    durationMs: 1,
  };
  const cases: Array<{
    name: string;
    run: (a: AgentActions) => Promise<void>;
    answer: PassResult;
    refused: boolean;
    passes: string[];
    held: string[];
  }> = [
    {
      name: 'restart app: stop everything, then start everything',
      run: (a) => a.restartApp(7, false),
      answer: done,
      refused: false,
      passes: [
        'pass stop=[7/web] start=[] purge=[] force=[] held=[]',
        'pass stop=[] start=[7/web] purge=[] force=[] held=[]',
      ],
      held: [],
    },
    {
      name: 'restart app under a lock: refused after the stop pass, nothing started',
      run: (a) => a.restartApp(7, false),
      answer: locked,
      refused: true,
      passes: ['pass stop=[7/web] start=[] purge=[] force=[] held=[]'],
      held: [],
    },
    {
      name: 'forced restart overrides the app lock',
      run: (a) => a.restartApp(7, true),
      answer: done,
      refused: false,
      passes: [
        'pass stop=[7/web] start=[] purge=[] force=[7] held=[]',
        'pass stop=[] start=[7/web] purge=[] force=[7] held=[]',
      ],
      held: [],
    },
    {
      name: 'purge',
      run: (a) => a.purgeApp(7, false),
      answer: done,
      refused: false,
      passes: ['pass stop=[] start=[] purge=[7] force=[] held=[]'],
      held: [],
    },
    {
      name: 'purge under a lock',
      run: (a) => a.purgeApp(7, false),
      answer: locked,
      refused: true,
      passes: ['pass stop=[] start=[] purge=[7] force=[] held=[]'],
      held: [],
    },
    {
      name: 'stop-service under a lock: refused, and the hold is taken back',
      run: (a) => a.serviceAction('stop', 7, 'web', false),
      answer: locked,
      refused: true,
      passes: ['pass stop=[] start=[] purge=[] force=[] held=[7/web]'],
      held: [],
    },
    {
      name: 'restart-service under a lock: refused before its start',
      run: (a) => a.serviceAction('restart', 7, 'web', false),
      answer: locked,
      refused: true,
      passes: ['pass stop=[7/web] start=[] purge=[] force=[] held=[]'],
      held: [],
    },
    {
      name: 'start-service kills nothing: a lock elsewhere in the app does not refuse it',
      run: (a) => a.serviceAction('start', 7, 'web', false),
      answer: locked,
      refused: false,
      passes: ['pass stop=[] start=[7/web] purge=[] force=[] held=[]'],
      held: [],
    },
  ];
  for (const c of cases) {
    const calls: string[] = [];
    const { actions, holds, requests } = actionsFor(
      memoryHolds(),
      () => target,
      calls,
      () => c.answer,
    );
    const run = c.run(actions);
    if (c.refused) await assert.rejects(run, { code: 'UPDATE_LOCKED' }, c.name);
    else await run;
    assert.deepEqual(calls, c.passes, c.name);
    assert.deepEqual([...holds.heldStopped(target)], c.held, `${c.name}: holds`);
    assert.deepEqual(requests.get().stop.size + requests.get().start.size + requests.get().purge.size, 0, 'withdrawn');
  }
});
