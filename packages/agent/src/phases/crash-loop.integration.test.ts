/**
 * Crash-loop detection end to end: a device whose last four starts were cut short mid-update (phase 'apply' left in
 * the store) starts a fifth time. The agent must hold its first pass back (CRASH_LOOP_BASE_MS), then apply the
 * target, reach idle and clear the count. Real store, real engine.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import pino from 'pino';
import { tempDir, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import { openStore } from '../store/store.js';
import { buildImage, cleanup, ourContainers, target, uniqueAppId, uniqueNamespace } from '../test-support/fixtures.js';
import { CRASH_LOOP_BASE_MS, CRASH_LOOP_THRESHOLD } from './phase-machine.js';

const namespace = uniqueNamespace();
const appId = uniqueAppId();
const image = `flotilla-agent-it/crash-loop:${appId}`;
let agent: AgentHandle | undefined;
let dir: Awaited<ReturnType<typeof tempDir>> | undefined;

after(async () => {
  await agent?.stop();
  await cleanup(namespace, [image]);
  await dir?.remove();
});

test(`the ${CRASH_LOOP_THRESHOLD}th start in a row that finds an interrupted apply holds the first pass back, then converges and clears the count`, async () => {
  dir = await tempDir('flotilla-agent-crash-loop-');
  const configPath = join(dir.path, 'config.json');
  const dataDir = join(dir.path, 'data');
  await writeFile(configPath, '{}\n');
  await buildImage(image, 'loop');
  // What four earlier starts killed mid-update leave behind.
  const before = openStore(dataDir);
  before.setPhase('apply');
  before.setInterruptedApplies(CRASH_LOOP_THRESHOLD - 1);
  before.close();

  const records: Array<{ msg?: string; interruptedApplies?: number; delayMs?: number }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n'))
        if (line) records.push(JSON.parse(line) as (typeof records)[number]);
      done();
    },
  });
  const startedAt = Date.now();
  agent = await startAgent({
    configPath,
    dataDir,
    namespace,
    apiPort: 0,
    logger: pino({ level: 'info' }, sink),
    localTarget: target({
      appId,
      appUuid: `app${appId}`,
      commit: `c${appId}`,
      releaseId: 1,
      services: { main: { image } },
    }),
  });

  const held = await waitFor('the crash-loop log record', () =>
    records.find((r) => r.msg?.startsWith('crash loop during an update')),
  );
  assert.equal(held.interruptedApplies, CRASH_LOOP_THRESHOLD);
  assert.equal(held.delayMs, CRASH_LOOP_BASE_MS);
  assert.equal(agent.state().phase, 'apply', 'still an interrupted update until a pass finishes');
  // Well inside the hold: nothing has touched the engine (a stretch of nothing is what the hold promises).
  await new Promise((resolve) => setTimeout(resolve, CRASH_LOOP_BASE_MS / 2));
  assert.equal(agent.state().passes, 0);
  assert.deepEqual(await ourContainers(namespace), []);

  await waitFor(
    'main running after the hold',
    async () => (await ourContainers(namespace)).some((c) => c.State === 'running'),
    { timeoutMs: CRASH_LOOP_BASE_MS + 30_000 },
  );
  assert.ok(Date.now() - startedAt >= CRASH_LOOP_BASE_MS, 'the first pass waited for the hold');
  await waitFor('idle', () => agent?.state().phase === 'idle');
  await agent.stop();
  agent = undefined;

  const afterwards = openStore(dataDir);
  try {
    assert.equal(afterwards.getPhase(), 'idle');
    assert.equal(afterwards.getInterruptedApplies(), 0, 'reaching idle clears the count');
  } finally {
    afterwards.close();
  }
});
