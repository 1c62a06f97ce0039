import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ComputeQueue } from './compute-queue.js';

/** A job that records when it runs and waits until released. */
function gate(log: string[], name: string) {
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  return {
    release,
    job: async (signal: AbortSignal) => {
      log.push(`start ${name}`);
      await Promise.race([released, new Promise((resolve) => signal.addEventListener('abort', resolve))]);
      log.push(`end ${name}${signal.aborted ? ' (aborted)' : ''}`);
    },
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('one computation at a time (app and OS deltas share the queue), one per key, and close aborts the rest', async () => {
  const queue = new ComputeQueue(1);
  const log: string[] = [];
  const app = gate(log, 'app');
  const os = gate(log, 'os');
  queue.run('app-pair', app.job);
  queue.run('os:pair', os.job);
  queue.run('app-pair', gate(log, 'app again').job);
  await tick();
  assert.deepEqual(log, ['start app'], 'the second waits for the first; the same key is not queued twice');
  assert.equal(queue.size, 2);
  app.release();
  for (let i = 0; i < 5; i += 1) await tick();
  assert.deepEqual(log, ['start app', 'end app', 'start os']);
  await queue.close();
  assert.deepEqual(log, ['start app', 'end app', 'start os', 'end os (aborted)']);
  assert.equal(queue.size, 0);
  queue.run('later', gate(log, 'later').job);
  await tick();
  assert.equal(log.includes('start later'), false, 'a closed queue starts nothing');
});

test('a failing job frees its slot', async () => {
  const queue = new ComputeQueue(1);
  const log: string[] = [];
  queue.run('bad', async () => {
    throw new Error('disk full');
  });
  queue.run('good', async () => void log.push('good ran'));
  for (let i = 0; i < 5; i += 1) await tick();
  assert.deepEqual(log, ['good ran']);
  await queue.close();
});
