import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { Store } from '../store/store.js';
import { MemoryEngine } from '../test-support/memory-engine.js';
import { createExecutors } from './executor.js';
import { runPass, type LoopDeps } from './loop.js';
import { NO_REQUESTS, type PlanContext, type TargetModel, type TargetService } from './state.js';

/**
 * runPass() with a small in-memory engine (test-support/memory-engine.ts): enough to check outcomes (done,
 * retry-after, error transient/terminal, cancelled) and loop detection without Docker.
 */

const svc: TargetService = {
  appId: 7,
  appUuid: 'u',
  serviceName: 'web',
  serviceId: 1,
  imageId: 1,
  releaseId: 1,
  commit: 'c',
  image: 'img:1',
  running: true,
  strategy: 'download-then-kill',
  handoverTimeoutMs: 1,
  dependsOn: [],
  restart: 'always',
  containerName: 'web_1',
  configHash: 'h',
  spec: { name: 'web_1' },
  networks: ['7_default'],
  extraNetworks: [],
  volumes: [],
};
const target: TargetModel = {
  apps: [
    {
      appId: 7,
      appUuid: 'u',
      name: 'a',
      commit: 'c',
      releaseId: 1,
      services: [svc],
      volumes: [],
      networks: [{ appId: 7, name: '7_default', configHash: 'n', spec: { Name: '7_default' } }],
    },
  ],
};

function deps(engine: MemoryEngine, ctx: Partial<PlanContext> = {}): LoopDeps {
  const store = { addKnownImage: () => undefined, forgetImage: () => undefined } as unknown as Store; // only these two are used by the executors here
  const log = pino({ level: 'silent' });
  return {
    engine,
    executors: createExecutors({
      engine,
      store,
      log,
      registryAuth: () => undefined,
      progress: new Map(),
      onProgress: () => undefined,
      serviceLockDir: () => '/tmp/flotilla-agent-loop-test',
    }),
    namespace: '',
    log,
    knownImages: () => [],
    target: () => target,
    context: async () => ({
      now: 0,
      lockedApps: new Set(),
      overrideLock: false,
      handoverComplete: new Set(),
      heldStopped: new Set(),
      agentLocks: new Set(),
      requests: NO_REQUESTS,
      ...ctx,
    }),
    onPlanned: () => undefined,
  };
}

describe('runPass()', () => {
  it('converges: create, start, then done', async () => {
    const engine = new MemoryEngine();
    const result = await runPass(deps(engine), new AbortController().signal);
    assert.deepEqual(result.outcome, { kind: 'done' });
    assert.equal(result.iterations, 3);
    assert.equal(result.stepsExecuted, 2);
    assert.equal(engine.state.containers[0]?.state, 'running');
  });

  it('no target at all: done without touching anything', async () => {
    const engine = new MemoryEngine();
    const result = await runPass({ ...deps(engine), target: () => null }, new AbortController().signal);
    assert.deepEqual(result.outcome, { kind: 'done' });
    assert.equal(engine.state.containers.length, 0);
  });

  it('an engine that never shows what it created is a loop, reported as an error', async () => {
    const engine = new MemoryEngine();
    engine.forget = true;
    const result = await runPass(deps(engine), new AbortController().signal);
    assert.equal(result.outcome.kind, 'error');
    assert.match(
      result.outcome.kind === 'error' ? result.outcome.error.message : '',
      /same steps were planned 3 times/,
    );
  });

  it('engine 400 is terminal, other failures transient', async () => {
    const engine = new MemoryEngine();
    engine.createError = Object.assign(new Error('bad parameter'), { statusCode: 400 });
    const terminal = await runPass(deps(engine), new AbortController().signal);
    assert.ok(terminal.outcome.kind === 'error' && terminal.outcome.terminal);
    engine.createError = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const transient = await runPass(deps(engine), new AbortController().signal);
    assert.ok(transient.outcome.kind === 'error' && !transient.outcome.terminal);
  });

  it('only waits left (update lock): retry-after', async () => {
    const engine = new MemoryEngine();
    engine.state.containers.push({
      id: 'old',
      name: 'web_0',
      appId: 7,
      appUuid: 'u',
      serviceName: 'web',
      releaseCommit: 'b',
      imageId: 'sha256:img',
      configHash: 'old',
      state: 'running',
      createdAt: 0,
      networks: [],
    });
    const result = await runPass(deps(engine, { lockedApps: new Set([7]) }), new AbortController().signal);
    assert.equal(result.outcome.kind, 'retry-after');
    assert.equal(engine.state.containers.length, 1, 'locked container kept');
  });

  it('an aborted signal cancels, which is not a failure', async () => {
    const abort = new AbortController();
    abort.abort();
    const result = await runPass(deps(new MemoryEngine()), abort.signal);
    assert.deepEqual(result.outcome, { kind: 'cancelled' });
  });
});
