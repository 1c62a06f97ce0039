import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { UpdateWindow } from '@flotilla/protocol';
import { scanLocks, serviceLockDir } from '../locks/update-locks.js';
import { createExecutors } from '../reconcile/executor.js';
import { Observed } from '../reconcile/observed.js';
import { Reconciler } from '../reconcile/reconciler.js';
import { NO_REQUESTS, type CurrentContainer, type TargetModel, type TargetService } from '../reconcile/state.js';
import type { Store } from '../store/store.js';
import { ForcedUpdate } from '../target/lock-override.js';
import { MemoryEngine } from '../test-support/memory-engine.js';
import { UpdateGate } from './update-gate.js';

/**
 * The reconciler with a real UpdateGate over an in-memory engine: a window that closes right after the old `web`
 * container was killed (the release half applied: `db` untouched, `web` gone) does not stop the pass, nor a restart
 * then; the release is finished. Without the gate's persisted apply, the planner would hold `web` back until the next
 * window (a device running half a release for a day).
 */

const WINDOW: UpdateWindow = { cron: '0 2 * * *', durationSeconds: 3600, timezone: 'UTC' };
const INSIDE = Date.parse('2026-12-01T02:59:59Z');
const CLOSED = Date.parse('2026-12-01T03:00:01Z');

const service = (name: string, configHash: string): TargetService => ({
  appId: 7,
  appUuid: 'u',
  serviceName: name,
  serviceId: 1,
  imageId: 1,
  releaseId: 2,
  commit: 'c2',
  image: 'img:1',
  running: true,
  strategy: 'download-then-kill',
  handoverTimeoutMs: 1,
  dependsOn: [],
  restart: 'always',
  containerName: `${name}_2`,
  configHash,
  spec: { name: `${name}_2` },
  networks: ['7_default'],
  extraNetworks: [],
  volumes: [],
});
const target: TargetModel = {
  apps: [
    {
      appId: 7,
      appUuid: 'u',
      name: 'a',
      commit: 'c2',
      releaseId: 2,
      // `web` changes in release 2 (config hash h); `db` does not.
      services: [service('web', 'h'), service('db', 'hdb')],
      volumes: [],
      networks: [{ appId: 7, name: '7_default', configHash: 'n', spec: { Name: '7_default' } }],
    },
  ],
};
/** A running container; `db`'s is named as release 2 names it (the memory engine does not rename). */
const running = (id: string, serviceName: string, configHash: string): CurrentContainer => ({
  id,
  name: serviceName === 'db' ? 'db_2' : `${serviceName}_1`,
  appId: 7,
  appUuid: 'u',
  serviceName,
  releaseCommit: 'c1',
  imageId: 'sha256:img',
  configHash,
  state: 'running',
  createdAt: 0,
  networks: ['7_default'],
});

describe('a window closing mid-apply', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-mid-apply-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  function setup(engine: MemoryEngine, stored: { windowApply: string | null }, clock: { now: number }) {
    const log = pino({ level: 'silent' });
    const store = {
      addKnownImage: () => undefined,
      forgetImage: () => undefined,
      getWindowApply: () => stored.windowApply,
      setWindowApply: (digest: string | null) => {
        stored.windowApply = digest;
      },
    } as unknown as Store; // only these are used here: the executors' image records and the gate's apply record
    const lockDir = (appId: number, name: string) => serviceLockDir(dir, '', appId, name);
    const gate = new UpdateGate({
      store,
      window: () => WINDOW,
      targetKey: () => 'release-2',
      forced: () => false,
      rollingBack: () => false,
      log,
      now: () => clock.now,
    });
    return new Reconciler({
      engine,
      executors: createExecutors({
        engine,
        store,
        log,
        registryAuth: () => undefined,
        progress: new Map(),
        onProgress: () => undefined,
        serviceLockDir: lockDir,
      }),
      namespace: '',
      log,
      knownImages: () => [],
      targets: { model: () => target, overrideLock: () => false, force: new ForcedUpdate() },
      scanLocks: () => scanLocks(dir, ''),
      heldStopped: () => new Set(),
      requests: () => NO_REQUESTS,
      observed: new Observed(),
      phase: () => undefined,
      logs: { system: () => undefined, sync: () => undefined },
      changed: () => undefined,
      gate,
    });
  }

  const webRunsRelease2 = (engine: MemoryEngine) =>
    engine.state.containers.some((c) => c.serviceName === 'web' && c.configHash === 'h' && c.state === 'running');

  it('finishes the release in the same pass', async () => {
    const engine = new MemoryEngine();
    engine.state.containers = [running('old-web', 'web', 'old'), running('db', 'db', 'hdb')];
    const clock = { now: INSIDE };
    const stored = { windowApply: null as string | null };
    engine.onRemove = () => {
      clock.now = CLOSED;
    };
    const result = await setup(engine, stored, clock).reconcile(new AbortController().signal);
    assert.deepEqual(result.outcome, { kind: 'done' });
    assert.equal(clock.now, CLOSED, 'the window did close mid-apply');
    assert.ok(webRunsRelease2(engine), 'web runs release 2');
    assert.ok(
      engine.state.containers.some((c) => c.id === 'db'),
      'db untouched',
    );
    assert.equal(stored.windowApply, null, 'converged: no apply in progress any more');
  });

  it('finishes it after a restart right after the kill', async () => {
    const engine = new MemoryEngine();
    engine.state.containers = [running('old-web', 'web', 'old'), running('db', 'db', 'hdb')];
    const clock = { now: INSIDE };
    const stored = { windowApply: null as string | null };
    const killed = new AbortController();
    engine.onRemove = () => {
      clock.now = CLOSED;
      killed.abort();
    };
    const cut = await setup(engine, stored, clock).reconcile(killed.signal);
    assert.deepEqual(cut.outcome, { kind: 'cancelled' });
    assert.ok(!engine.state.containers.some((c) => c.serviceName === 'web'), 'half applied: web gone');
    assert.notEqual(stored.windowApply, null, 'the apply in progress was persisted');
    // A new agent (new gate and reconciler over the same store), the window closed.
    const result = await setup(engine, stored, clock).reconcile(new AbortController().signal);
    assert.deepEqual(result.outcome, { kind: 'done' });
    assert.ok(webRunsRelease2(engine), 'web runs release 2');
  });

  it('an update that had not started waits for the window', async () => {
    const engine = new MemoryEngine();
    engine.state.containers = [running('old-web', 'web', 'old'), running('db', 'db', 'hdb')];
    const result = await setup(engine, { windowApply: null }, { now: CLOSED }).reconcile(new AbortController().signal);
    assert.equal(result.outcome.kind, 'retry-after');
    assert.ok(
      engine.state.containers.some((c) => c.id === 'old-web'),
      'release 1 kept',
    );
  });
});
