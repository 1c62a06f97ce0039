import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import {
  cleanup,
  ourContainers,
  serviceOf,
  target,
  uniqueAppId,
  uniqueNamespace,
  quiet,
} from '../test-support/fixtures.js';
import { AGENT_LOCK_MARK, LOCK_FILE, serviceLockDir } from './update-locks.js';

const SERVICES = ['a', 'b', 'c'];

/**
 * A service that, when told to stop (the agent has decided to kill it), tries to take the update lock the way a
 * careful app does (`set -C`: create the file only if it does not exist, O_EXCL) and writes what happened to
 * /tmp/balena/attempt: `took`, or `held:<content of the lock file>`.
 */
async function buildLockTryingImage(tag: string): Promise<void> {
  const base = await ensureBusyboxImage();
  const onTerm =
    'if ( set -C; echo service > /tmp/balena/updates.lock ) 2>/dev/null; then echo took > /tmp/balena/attempt; ' +
    'else echo "held:$(cat /tmp/balena/updates.lock)" > /tmp/balena/attempt; fi; exit 0';
  const dockerfile = [
    `FROM ${base}`,
    `RUN echo ${tag} > /.nonce`,
    `CMD ["sh", "-c", ${JSON.stringify(`trap '${onTerm}' TERM; while true; do sleep 0.2; done`)}]`,
  ].join('\n');
  await run('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile });
}

/**
 * The window between the agent's lock scan and its kill, on the real engine: the agent takes the update lock
 * itself before it kills, so a service that tries to take the lock after the agent decided to kill it finds it held
 * by the agent; and the agent lets go of the lock once the update is done.
 */
describe('update lock taken by the agent before a kill', () => {
  const namespace = uniqueNamespace();
  const appId = uniqueAppId();
  const images = [1, 2].map((r) => `flotilla-agent-it/lock-window:${appId}-r${r}`);
  let dir: { path: string; remove: () => Promise<void> };
  let agent: AgentHandle;
  const lockDir = (service: string) => serviceLockDir(join(dir.path, 'data', 'services'), namespace, appId, service);
  const release = (r: number) =>
    target({
      appId,
      appUuid: `app${appId}`,
      commit: `c${r}`,
      releaseId: r,
      services: Object.fromEntries(SERVICES.map((s) => [s, { image: images[r - 1] as string }])),
    });
  const runningRelease = async (r: number): Promise<boolean> => {
    const cs = await ourContainers(namespace);
    return (
      cs.length === SERVICES.length &&
      cs.every((c) => c.State === 'running' && c.Image === images[r - 1] && SERVICES.includes(serviceOf(c)))
    );
  };

  before(async () => {
    await Promise.all(images.map((tag) => buildLockTryingImage(tag)));
    dir = await tempDir('flotilla-agent-lock-');
    const configPath = join(dir.path, 'config.json');
    await writeFile(configPath, JSON.stringify({}));
    agent = await startAgent({
      configPath,
      dataDir: join(dir.path, 'data'),
      namespace,
      apiPort: 0,
      pollIntervalMs: 500,
      logger: quiet,
      localTarget: release(1),
    });
    await waitFor('release 1 running', () => runningRelease(1), { timeoutMs: 30_000 });
  });

  after(async () => {
    await agent?.stop();
    await cleanup(namespace, images);
    await dir?.remove();
  });

  it('a service trying to take the lock once the agent decided to kill it finds it held; released after', async () => {
    agent.setLocalTarget(release(2));
    await waitFor('release 2 running', () => runningRelease(2), { timeoutMs: 60_000 });
    const attempts = await Promise.all(
      SERVICES.map(async (s) => (await readFile(join(lockDir(s), 'attempt'), 'utf8')).trim()),
    );
    const refused = attempts.filter((a) => a === `held:${AGENT_LOCK_MARK.trim()}`).length;
    console.log(
      `security: lock window: ${attempts.length} attempts by services to take the lock after the kill decision, ${refused} found it held by the agent`,
    );
    assert.deepEqual(
      attempts,
      SERVICES.map(() => `held:${AGENT_LOCK_MARK.trim()}`),
    );

    await waitFor('a converged pass', async () => (await agent.reconcileNow()).outcome.kind === 'done', {
      timeoutMs: 20_000,
    });
    for (const s of SERVICES)
      await assert.rejects(readFile(join(lockDir(s), LOCK_FILE)), { code: 'ENOENT' }, `${s}: lock released`);
  });
});
