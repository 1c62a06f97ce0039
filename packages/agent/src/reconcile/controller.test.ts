import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { Wakeable } from '../util/wakeable.js';
import { ReconcileController } from './controller.js';
import type { PassResult } from './loop.js';

const done: PassResult = { outcome: { kind: 'done' }, iterations: 1, stepsExecuted: 0, durationMs: 0 };

/** A reconciler whose passes end only when the test says so; records what ran, in order. */
function gatedReconciler(log: string[]) {
  const gates: Array<() => void> = [];
  return {
    gates,
    reconcile: async (): Promise<PassResult> => {
      log.push('pass start');
      await new Promise<void>((resolve) => gates.push(resolve));
      log.push('pass end');
      return done;
    },
  };
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !check(); i++) await tick();
  assert.ok(check(), `timed out waiting for ${what}`);
}

function controllerFor(
  reconciler: { reconcile(): Promise<PassResult> },
  abort: AbortController,
  targetKey: () => string = () => 'target',
) {
  return new ReconcileController({
    reconciler,
    targetKey,
    recheckMs: 60_000,
    pollIntervalMs: 60_000,
    wakeup: new Wakeable(),
    signal: abort.signal,
  });
}

describe('ReconcileController', () => {
  it('runs one pass at a time; wakes during a pass cause exactly one more', async () => {
    const log: string[] = [];
    const reconciler = gatedReconciler(log);
    const abort = new AbortController();
    const controller = controllerFor(reconciler, abort);
    controller.start(0);
    await until('the first pass', () => reconciler.gates.length === 1);
    for (let i = 0; i < 3; i++) controller.wake();
    reconciler.gates[0]?.();
    await until('the second pass', () => reconciler.gates.length === 2);
    reconciler.gates[1]?.();
    await until('two passes counted', () => controller.passes === 2);
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(reconciler.gates.length, 2, 'no third pass without a new wake');
    assert.deepEqual(log, ['pass start', 'pass end', 'pass start', 'pass end']);
    assert.equal(controller.lastPass, done);
    abort.abort();
    await controller.stopped();
  });

  it('an exclusive job waits for the pass in flight, and the next pass waits for the job', async () => {
    const log: string[] = [];
    const reconciler = gatedReconciler(log);
    const abort = new AbortController();
    const controller = controllerFor(reconciler, abort);
    controller.start(0);
    await until('the first pass', () => reconciler.gates.length === 1);
    let releaseJob = (): void => undefined;
    const job = controller.exclusive(async () => {
      log.push('job start');
      await new Promise<void>((resolve) => {
        releaseJob = resolve;
      });
      log.push('job end');
    });
    const next = controller.pass();
    reconciler.gates[0]?.();
    await until('the job', () => log.includes('job start'));
    assert.equal(reconciler.gates.length, 1, 'no pass while the job runs');
    releaseJob();
    await job;
    await until('the next pass', () => reconciler.gates.length === 2);
    reconciler.gates[1]?.();
    await next;
    assert.deepEqual(log, ['pass start', 'pass end', 'job start', 'job end', 'pass start', 'pass end']);
    abort.abort();
    await controller.stopped();
  });

  it('is healthy while passes run and end in time', async () => {
    const abort = new AbortController();
    const controller = controllerFor({ reconcile: async () => done }, abort);
    controller.start(0);
    await until('a pass', () => controller.passes === 1);
    assert.equal(controller.healthy(), true);
    abort.abort();
    await controller.stopped();
  });

  it('wakes do not cut an error back-off short; a new target or a retry does', async () => {
    const failed: PassResult = {
      outcome: { kind: 'error', terminal: false, error: new Error('no space left on device') },
      iterations: 1,
      stepsExecuted: 0,
      durationMs: 0,
    };
    let target = 'release 1';
    const abort = new AbortController();
    const controller = controllerFor({ reconcile: async () => failed }, abort, () => target);
    controller.start(0);
    await until('the first pass', () => controller.passes === 1);
    for (let i = 0; i < 50; i++) {
      controller.wake();
      await tick();
    }
    assert.equal(controller.passes, 1, 'polls and reports waking the controller do not retry a failing pass');
    target = 'release 2';
    controller.wake();
    await until('a pass for the new target', () => controller.passes === 2);
    controller.wake();
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(controller.passes, 2, 'the new target failed too: backing off again');
    controller.retry();
    await until('the retry', () => controller.passes === 3);
    abort.abort();
    await controller.stopped();
  });
});
