import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { targetDeviceSchema, type TargetDevice } from '@flotilla/protocol';
import type { ContainerRun } from '../engine/container-engine.js';
import type { CurrentContainer, TargetModel } from '../reconcile/state.js';
import { ReleaseWatch } from './release-watch.js';
import { EMPTY_ROLLOUT, type Rollout } from './rollout.js';

const device = (commit: string): TargetDevice =>
  targetDeviceSchema.parse({
    name: 'd',
    config: { BALENA_ROLLBACK_SOAK_SECONDS: '10' },
    apps: {
      app1: {
        id: 1,
        name: 'app',
        releases: {
          [commit]: {
            id: 1,
            services: {
              main: { id: 1, image_id: 1, image: `img:${commit}`, environment: {}, labels: {}, composition: {} },
            },
          },
        },
      },
    },
  });

const model = (commit: string): TargetModel =>
  ({
    apps: [
      {
        appId: 1,
        appUuid: 'app1',
        commit,
        services: [{ appId: 1, serviceName: 'main', configHash: `h-${commit}`, running: true, restart: 'no' }],
      },
    ],
  }) as unknown as TargetModel;

const container = (commit: string): CurrentContainer => ({
  id: `id-${commit}`,
  name: 'main',
  appId: 1,
  appUuid: 'app1',
  serviceName: 'main',
  releaseCommit: commit,
  imageId: 'sha256:x',
  configHash: `h-${commit}`,
  state: 'running',
  createdAt: 0,
  networks: [],
});

/**
 * ReleaseWatch over a store held in memory and an engine that answers what the case says of the one container: the
 * decisions (commit, watch, refuse) and what they persist, without Docker.
 */
function setup() {
  let stored: Rollout = EMPTY_ROLLOUT;
  let target = device('c1');
  let now = 1_000_000;
  let run: ContainerRun = { state: 'running', restartCount: 0, exitCode: 0, startedAt: 't0', health: undefined };
  let lastExit: number | undefined;
  const system: string[] = [];
  let stopped = new Set<string>();
  const watch = new ReleaseWatch({
    store: { getRollout: () => stored, setRollout: (r) => (stored = structuredClone(r)) },
    engine: {
      inspectRun: async () => run,
      lastExitCode: async () => lastExit,
      tailLogs: async () => ['line 1', 'fatal'],
    },
    device: () => target,
    log: pino({ level: 'silent' }),
    system: (m) => system.push(m),
    changed: () => undefined,
    wake: () => undefined,
    stoppedOnRequest: () => stopped,
    now: () => now,
  });
  /** A pass that applied `commit`; `runs`: the release whose container exists (another one while it downloads). */
  const pass = (commit: string, status = 'done', runs = commit) =>
    watch.afterPass({
      current: { containers: [container(runs)], volumes: [], networks: [], images: [], knownImages: [] },
      statuses: new Map([[1, status]]),
      model: model(commit),
    });
  return {
    watch,
    pass,
    stored: () => stored,
    system,
    target: (commit: string) => (target = device(commit)),
    advance: (ms: number) => (now += ms),
    run: (r: Partial<ContainerRun>) => (run = { ...run, ...r }),
    lastExit: (code: number | undefined) => (lastExit = code),
    stop: (keys: string[]) => (stopped = new Set(keys)),
  };
}

describe('ReleaseWatch', () => {
  it('keeps the first release at once; watches the next; keeps it when the soak ends well', async () => {
    const t = setup();
    await t.pass('c1');
    assert.equal(t.stored().committed.app1?.commit, 'c1');
    t.target('c2');
    await t.pass('c2', 'downloading', 'c1');
    assert.deepEqual(t.stored().soaking, {}, 'not watched before it is applied');
    await t.pass('c2');
    assert.equal(t.stored().soaking.app1?.commit, 'c2');
    assert.deepEqual([...t.watch.keepImages()], ['img:c1'], 'the way back is kept during the soak');
    t.advance(9_999);
    await t.pass('c2');
    assert.equal(t.stored().committed.app1?.commit, 'c1', 'not before the soak ends');
    t.advance(1);
    await t.pass('c2');
    assert.equal(t.stored().committed.app1?.commit, 'c2');
    assert.deepEqual(t.stored().soaking, {});
    assert.deepEqual([...t.watch.keepImages()], ['img:c2'], 'the previous images may go');
  });

  it('refuses a failing release: the applied target is the committed one until told otherwise', async () => {
    const t = setup();
    await t.pass('c1');
    t.target('c2');
    await t.pass('c2');
    t.run({ state: 'restarting', restartCount: 3, exitCode: 1 });
    await t.pass('c2');
    const refused = t.stored().refused.app1;
    assert.equal(refused?.from_commit, 'c2');
    assert.equal(refused?.to_commit, 'c1');
    assert.equal(refused?.service, 'main');
    assert.deepEqual(refused?.logs, ['line 1', 'fatal']);
    assert.equal(t.watch.rollback()?.from_commit, 'c2');
    assert.deepEqual(Object.keys(t.watch.effective(device('c2')).apps.app1?.releases ?? {}), ['c1']);
    assert.ok(t.system.some((l) => l.startsWith('Rolling back from release c2 to c1: service main exited non-zero')));

    // The rolled-back passes run c1; nothing is decided again while the target names c2.
    t.run({ state: 'running', restartCount: 0, exitCode: 0 });
    await t.pass('c1');
    assert.equal(t.stored().refused.app1?.from_commit, 'c2');
    assert.equal(t.stored().committed.app1?.commit, 'c1');

    t.watch.retry();
    assert.equal(t.watch.rollback(), null, 'a forced update tries it again');
    assert.deepEqual(Object.keys(t.watch.effective(device('c2')).apps.app1?.releases ?? {}), ['c2']);
  });

  it('a crash loop seen while the container runs again names the exit code of its last exit', async () => {
    const t = setup();
    await t.pass('c1');
    t.target('c2');
    await t.pass('c2');
    t.lastExit(3);
    t.run({ state: 'running', restartCount: 3, exitCode: 0 });
    await t.pass('c2');
    assert.match(
      t.stored().refused.app1?.reason ?? '',
      /exited non-zero \(last exit code 3\) and was restarted 3 times/,
    );
  });

  it('starts by hand (the engine then resets its restart count) still count towards a crash loop', async () => {
    const t = setup();
    await t.pass('c1');
    t.target('c2');
    await t.pass('c2', 'applying changes');
    assert.equal(t.stored().soaking.app1?.commit, 'c2', 'watched once applied, converged or not');
    for (const startedAt of ['t1', 't2', 't3']) {
      t.run({ startedAt, restartCount: 0 });
      await t.pass('c2', 'applying changes');
      assert.deepEqual(t.stored().refused, {}, `not yet at ${startedAt}`);
    }
    t.run({ startedAt: 't4', restartCount: 0 });
    await t.pass('c2', 'applying changes');
    assert.match(t.stored().refused.app1?.reason ?? '', /crash-looping: restarted 3 times/);
  });

  it('a new release ends the refusal', async () => {
    const t = setup();
    await t.pass('c1');
    t.target('c2');
    await t.pass('c2');
    t.run({ health: 'unhealthy' });
    await t.pass('c2');
    assert.match(t.stored().refused.app1?.reason ?? '', /unhealthy/);
    t.target('c3');
    t.run({ health: 'healthy' });
    await t.pass('c3');
    assert.deepEqual(t.stored().refused, {});
    assert.equal(t.stored().soaking.app1?.commit, 'c3');
  });

  it('a service stopped on request is no failure', async () => {
    const t = setup();
    await t.pass('c1');
    t.target('c2');
    await t.pass('c2');
    t.run({ state: 'exited', exitCode: 143 });
    t.stop(['1/main']);
    await t.pass('c2');
    assert.deepEqual(t.stored().refused, {});
    t.stop([]);
    await t.pass('c2');
    assert.equal(t.stored().refused.app1?.reason, 'service main exited with code 143');
  });
});
