import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Executors } from '../reconcile/steps.js';
import { step } from '../reconcile/steps.js';
import { withSystemLogs } from './step-messages.js';

function table(fail: Set<string>): Executors {
  const run = async (s: { action: string }) => {
    if (fail.has(s.action)) throw new Error('engine said no');
  };
  return {
    fetch: run,
    removeImage: run,
    createNetwork: run,
    removeNetwork: run,
    createVolume: run,
    removeVolume: run,
    createContainer: run,
    startContainer: run,
    stopContainer: run,
    killContainer: run,
    updateMetadata: run,
    takeLock: run,
    releaseLock: run,
  };
}

test('each visible step says when it starts and ends; failures say why and still throw', async () => {
  const lines: string[] = [];
  const executors = withSystemLogs(table(new Set(['killContainer'])), (m) => lines.push(m));
  const signal = new AbortController().signal;
  await executors.startContainer(step('startContainer', { containerId: 'c1', serviceName: 'main', appId: 1 }), signal);
  await executors.updateMetadata(step('updateMetadata', { containerId: 'c1', name: 'main_2' }), signal);
  await assert.rejects(
    executors.killContainer(
      step('killContainer', { containerId: 'c1', serviceName: 'main', appId: 1, reason: 'x' }),
      signal,
    ),
    /engine said no/,
  );
  assert.deepEqual(lines, [
    "Starting service 'main'",
    "Service started 'main'",
    "Killing service 'main'",
    "Failed to kill service 'main': engine said no",
  ]);
});
