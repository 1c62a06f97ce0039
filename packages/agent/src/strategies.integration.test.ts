import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LABELS, type UpdateStrategy } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import {
  buildImage,
  cleanup,
  docker,
  exec,
  harness,
  localImage,
  ourContainers,
  reportedApp,
  reportedDone,
  startHarnessAgent,
} from './test-support/fixtures.js';
import { setSoak } from './test-support/rollback.js';

async function imagePresent(ref: string): Promise<boolean> {
  return (await localImage(ref)) !== undefined;
}

/**
 * Each strategy: release 1 runs from a local image; release 2's image exists only in the server's registry, whose
 * blob downloads the tap holds while the test looks at the world mid-pull, then lets through.
 */
async function strategyScenario(strategy: UpdateStrategy): Promise<void> {
  const h = await harness();
  const appId = h.cp.fleet.id;
  const nonce = Math.random().toString(16).slice(2, 8);
  const r1 = `flotilla-agent-it/${strategy}:r1-${nonce}`;
  const r2local = `flotilla-agent-it/${strategy}:r2-${nonce}`;
  let r2 = '';
  const agent = await startHarnessAgent(h);
  const uuid = agent.state().uuid;
  try {
    // Release 1's image is the way back until release 2 has passed its soak (self-rollback): a short one here.
    await setSoak(h, 1);
    await Promise.all([buildImage(r1, 'r1'), buildImage(r2local, 'r2')]);
    r2 = await h.cp.push(r2local, 'main');
    await docker.getImage(r2local).remove();
    const labels = { [LABELS.updateStrategy]: strategy };
    const release = (image: string) =>
      h.cp.release({ volumes: ['data'], services: { main: { image, labels, compose: { volumes: ['data:/data'] } } } });
    const c1 = await release(r1);
    agent.triggerUpdate();
    const done = (commit: string) => () => reportedDone(h, uuid, commit);
    await waitFor('release 1 running', done(c1), { timeoutMs: 30_000 });
    const [old] = await ourContainers(h.namespace);
    assert.ok(old);
    await exec(old.Id, 'echo kept > /data/file');

    const releaseBlobs = h.cp.tap.holdBlobs();
    const c2 = await release(r2);
    agent.triggerUpdate();
    await waitFor('pull of release 2 started', () => h.cp.tap.pullsStarted > 0, { timeoutMs: 30_000 });
    // The pull is held; what must be true of the world by then is reported once the agent is in the download. The
    // service's status and the release's update status are waited for together: a report may carry one change a
    // moment before the next report carries the other.
    await waitFor(
      'Downloading reported',
      () => {
        const release = reportedApp(h, uuid)?.releases[c2];
        if (release?.services.main?.status !== 'Downloading') return false;
        return strategy === 'download-then-kill' || strategy === 'hand-over'
          ? release.update_status === 'downloading'
          : true;
      },
      { timeoutMs: 15_000 },
    );
    const during = await ourContainers(h.namespace);
    const oldRunning = during.some((c) => c.Id === old.Id && c.State === 'running');
    switch (strategy) {
      case 'download-then-kill':
      case 'hand-over':
        assert.ok(oldRunning, 'old release keeps running while the new image downloads');
        assert.equal(reportedApp(h, uuid)?.releases[c2]?.update_status, 'downloading');
        break;
      case 'kill-then-download':
        assert.equal(during.length, 0, 'old release killed before the download');
        assert.ok(await imagePresent(r1), 'old image kept');
        break;
      case 'delete-then-download':
        assert.equal(during.length, 0, 'old release killed before the download');
        assert.equal(await imagePresent(r1), false, 'old image deleted before the download');
        break;
    }
    releaseBlobs();

    if (strategy === 'hand-over') {
      await waitFor(
        'old and new running side by side',
        async () => (await ourContainers(h.namespace)).filter((c) => c.State === 'running').length === 2,
        { timeoutMs: 30_000 },
      );
      // Nothing may happen here until the test writes the complete file: the wait is the thing under test.
      await new Promise((r) => setTimeout(r, 1_000));
      assert.equal(
        (await ourContainers(h.namespace)).filter((c) => c.State === 'running').length,
        2,
        'old kept until hand-over completes',
      );
      await writeFile(join(h.dataDir, 'services', `${h.namespace}${appId}`, 'main', 'handover-complete'), '');
    }
    await waitFor('release 2 done', done(c2), { timeoutMs: 60_000 });
    const after = await ourContainers(h.namespace);
    assert.equal(after.length, 1, 'exactly one container');
    assert.equal((await exec((after[0] as { Id: string }).Id, 'cat /release /data/file')).trim(), 'r2\nkept');
    assert.equal(h.cp.tap.registryAuthFailures, 0, 'registry credentials d_<uuid>/device key accepted');
    if (strategy !== 'delete-then-download') {
      await waitFor('old image cleaned up once unused', async () => !(await imagePresent(r1)), { timeoutMs: 15_000 });
    }
  } finally {
    await agent.stop();
    await cleanup(h.namespace, [r1, r2local, ...(r2 ? [r2] : [])]);
    await h.remove();
  }
}

describe('update strategies (real engine, real pulls from the server registry)', { concurrency: true }, () => {
  for (const strategy of ['download-then-kill', 'kill-then-download', 'delete-then-download', 'hand-over'] as const) {
    it(strategy, () => strategyScenario(strategy));
  }

  it('hand-over without the complete file: old killed after io.balena.update.handover-timeout', async () => {
    const h = await harness();
    const nonce = Math.random().toString(16).slice(2, 8);
    const r1 = `flotilla-agent-it/handover-timeout:r1-${nonce}`;
    const r2 = `flotilla-agent-it/handover-timeout:r2-${nonce}`;
    const agent = await startHarnessAgent(h);
    try {
      await Promise.all([buildImage(r1, 'r1'), buildImage(r2, 'r2')]);
      const labels = { [LABELS.updateStrategy]: 'hand-over', [LABELS.handoverTimeout]: '3000' };
      await h.cp.release({ services: { main: { image: r1, labels } } });
      agent.triggerUpdate();
      await waitFor('release 1', async () => (await ourContainers(h.namespace)).some((c) => c.State === 'running'), {
        timeoutMs: 30_000,
      });
      const c2 = await h.cp.release({ services: { main: { image: r2, labels } } });
      agent.triggerUpdate();
      await waitFor(
        'both running',
        async () => (await ourContainers(h.namespace)).filter((c) => c.State === 'running').length === 2,
        { timeoutMs: 30_000 },
      );
      const fresh = (await ourContainers(h.namespace)).find((c) => c.Labels[LABELS.releaseCommit] === c2) as {
        Id: string;
      };
      const created = Date.parse((await docker.getContainer(fresh.Id).inspect()).Created);
      await waitFor('old killed after the timeout', async () => (await ourContainers(h.namespace)).length === 1, {
        timeoutMs: 30_000,
        intervalMs: 50,
      });
      // The engine's list gives creation in whole seconds, so the deadline may come up to 1 s early; never earlier.
      assert.ok(Date.now() - created >= 3_000 - 1_000, `not killed before the timeout (${Date.now() - created} ms)`);
      assert.equal((await ourContainers(h.namespace))[0]?.Id, fresh.Id);
    } finally {
      await agent.stop();
      await cleanup(h.namespace, [r1, r2]);
      await h.remove();
    }
  });

  it('update lock blocks kill/restart until released; force overrides it', async () => {
    const h = await harness();
    const appId = h.cp.fleet.id;
    const nonce = Math.random().toString(16).slice(2, 8);
    const imgs = [1, 2, 3].map((n) => `flotilla-agent-it/lock:r${n}-${nonce}`);
    const agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    const release = (n: number) =>
      h.cp.release({ services: { main: { image: imgs[n - 1] as string }, side: { image: imgs[0] as string } } });
    const running = async (): Promise<string[]> =>
      (await ourContainers(h.namespace))
        .filter((c) => c.State === 'running')
        .map((c) => c.Id)
        .sort();
    const done = (commit: string) => () => reportedDone(h, uuid, commit);
    try {
      await Promise.all(imgs.map((img, i) => buildImage(img, `r${i + 1}`)));
      const c1 = await release(1);
      agent.triggerUpdate();
      await waitFor('release 1', done(c1), { timeoutMs: 30_000 });
      const lock = join(h.dataDir, 'services', `${h.namespace}${appId}`, 'side', 'updates.lock');
      // The service takes the lock from inside its container, through the /tmp/balena bind mount.
      const side = await waitFor('side running', async () =>
        (await ourContainers(h.namespace)).find(
          (c) => c.Labels[LABELS.serviceName] === 'side' && c.State === 'running',
        ),
      );
      await exec((side as { Id: string }).Id, 'touch /tmp/balena/updates.lock');
      const before = await running();

      const c2 = await release(2);
      agent.triggerUpdate();
      await waitFor(
        'c2 waiting on the lock',
        () => reportedApp(h, uuid)?.releases[c2]?.update_status === 'downloaded',
        { timeoutMs: 15_000 },
      );
      // Not a moment of quiet but passes: the agent looked at the world again, twice, and still killed nothing.
      const passes = agent.state().passes;
      await waitFor('two more passes while locked', () => agent.state().passes >= passes + 2, { timeoutMs: 15_000 });
      assert.deepEqual(await running(), before, 'nothing killed while the lock is held');

      await rm(lock);
      await waitFor('c2 applied once the lock is released', done(c2), { timeoutMs: 30_000 });

      await exec((side as { Id: string }).Id, 'touch /tmp/balena/updates.lock');
      const c3 = await release(3);
      agent.triggerUpdate({ force: true });
      await waitFor('c3 applied despite the lock (forced)', done(c3), { timeoutMs: 30_000 });
    } finally {
      await agent.stop();
      await cleanup(h.namespace, imgs);
      await h.remove();
    }
  });
});
