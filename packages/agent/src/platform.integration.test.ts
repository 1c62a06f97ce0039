import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { it } from 'node:test';
import { run, tempDir, waitFor } from '@flotilla/testkit';
import {
  buildImage,
  cleanup,
  docker,
  harness,
  localImage,
  ourContainers,
  startHarnessAgent,
} from './test-support/fixtures.js';

/** An image built for linux/arm64 (FROM scratch, so no emulation is needed to build it on this amd64 engine). */
async function buildArm64Image(tag: string): Promise<string> {
  const dir = await tempDir('flotilla-agent-arm64-');
  try {
    await run('sh', [
      '-c',
      `cd '${dir.path}' && echo ${randomBytes(8).toString('hex')} > marker && printf 'FROM scratch\\nCOPY marker /marker\\nCMD ["/marker"]\\n' > Dockerfile`,
    ]);
    await docker
      .buildImage({ context: dir.path, src: ['Dockerfile', 'marker'] }, { t: tag, platform: 'linux/arm64' })
      .then(
        (stream) =>
          new Promise((resolve, reject) =>
            docker.modem.followProgress(stream, (error) => (error ? reject(error) : resolve(undefined))),
          ),
      );
    assert.equal((await docker.getImage(tag).inspect()).Architecture, 'arm64');
    return tag;
  } finally {
    await dir.remove();
  }
}

it('an image built for another CPU is pulled but never started: the running release stays, the update fails clearly', async () => {
  const h = await harness();
  const nonce = Math.random().toString(16).slice(2, 8);
  const r1 = `flotilla-agent-it/platform:r1-${nonce}`;
  const armLocal = `flotilla-agent-it/platform:arm64-${nonce}`;
  const r3 = `flotilla-agent-it/platform:r3-${nonce}`;
  const agent = await startHarnessAgent(h);
  const uuid = agent.state().uuid;
  let armServed = '';
  try {
    await Promise.all([buildImage(r1, 'r1'), buildImage(r3, 'r3'), buildArm64Image(armLocal)]);
    armServed = await h.cp.push(armLocal, 'main');
    await docker.getImage(armLocal).remove({ force: true });

    await h.cp.release({ services: { main: { image: r1 } } });
    agent.triggerUpdate();
    await waitFor(
      'release 1 running',
      async () => (await ourContainers(h.namespace)).some((c) => c.State === 'running'),
      { timeoutMs: 30_000 },
    );
    const [first] = await ourContainers(h.namespace);

    // Release 2 is arm64 only; this engine is amd64.
    await h.cp.release({ services: { main: { image: armServed } } });
    agent.triggerUpdate();
    const failed = await waitFor(
      'the update to fail',
      () => {
        const pass = agent.state().lastPass;
        return pass?.outcome.kind === 'error' ? pass.outcome : undefined;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(failed.terminal, true, 'retrying cannot fix it: no retries until the target changes');
    assert.match(failed.error.message, /built for linux\/arm64, and this device runs linux\/amd64/);
    assert.ok((await localImage(armServed))?.Id, 'the image was downloaded (and is known, so it is cleaned up later)');
    const now = await ourContainers(h.namespace);
    assert.deepEqual(
      now.map((c) => [c.Id, c.State]),
      [[first!.Id, 'running']],
      'release 1 still runs, nothing of release 2 was created',
    );
    await waitFor('the failure reported', async () => (await h.cp.device(uuid)).status === 'Update failed', {
      timeoutMs: 10_000,
    });

    // A release the device can run converges as usual, and the unusable image is cleaned up.
    await h.cp.release({ services: { main: { image: r3 } } });
    agent.triggerUpdate();
    await waitFor(
      'release 3 running',
      async () => {
        const containers = await ourContainers(h.namespace);
        return containers.length === 1 && containers[0]!.Image === r3 && containers[0]!.State === 'running';
      },
      { timeoutMs: 30_000 },
    );
    await waitFor('the arm64 image removed', async () => (await localImage(armServed)) === undefined, {
      timeoutMs: 30_000,
    });
  } finally {
    await agent.stop();
    await cleanup(h.namespace, [r1, r3, armLocal, ...(armServed ? [armServed] : [])]);
    await h.remove();
  }
});
