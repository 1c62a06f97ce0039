import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '@flotilla/testkit';
import {
  buildImage,
  cleanup,
  docker,
  ourContainers,
  reportedApp,
  reportedDone,
  startHarnessAgent,
  harness,
  type Harness,
} from '../test-support/fixtures.js';
import {
  CRASHES,
  FAILING_SOAK_SECONDS,
  buildScriptImage,
  imagePresent,
  mainOn,
  mainRuns,
  setSoak,
} from '../test-support/rollback.js';

/** A window that opens once a day, `hoursAhead` hours from now (UTC), for a minute. */
function windowHoursAhead(hoursAhead: number) {
  const hour = (new Date().getUTCHours() + hoursAhead) % 24;
  return { cron: `0 ${hour} * * *`, durationSeconds: 60, timezone: 'UTC' };
}

/** A window that opens at `at` (to the second, six-field cron, UTC) for two minutes. */
function windowAt(at: Date) {
  const cron = `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`;
  return { cron, durationSeconds: 120, timezone: 'UTC' };
}

async function setFleetWindow(h: Harness, window: object): Promise<void> {
  await h.cp.api('PUT', `/api/v1/fleets/${h.cp.fleet.slug}/update-window`, window);
}

/** The one container of the app: its id and the image it runs. */
async function theContainer(h: Harness): Promise<{ id: string; image: string; created: number }> {
  const containers = await ourContainers(h.namespace);
  assert.equal(containers.length, 1, 'one container');
  const [c] = containers as [(typeof containers)[number]];
  return { id: c.Id, image: c.Image, created: c.Created * 1000 };
}

/**
 * "Download now, apply later" with a real agent on the real engine against the real server: outside its window the
 * device pulls release 2 from the server's registry but keeps release 1 running, says it waits and until when, and
 * still waits after a restart; a forced update applies it at once (once); release 3 waits again, until a window set
 * to open a few seconds ahead opens.
 */
describe('maintenance window (real engine, real server)', () => {
  it('downloads at once, applies inside the window; a forced update overrides it once', async () => {
    const h = await harness();
    const nonce = Math.random().toString(16).slice(2, 8);
    const r1 = `flotilla-agent-it/window:r1-${nonce}`;
    const r2local = `flotilla-agent-it/window:r2-${nonce}`;
    const r3 = `flotilla-agent-it/window:r3-${nonce}`;
    let r2 = '';
    let agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    try {
      await setSoak(h, 1);
      await Promise.all([buildImage(r1, 'r1'), buildImage(r2local, 'r2'), buildImage(r3, 'r3')]);
      r2 = await h.cp.push(r2local, 'main');
      await docker.getImage(r2local).remove();
      const release = (image: string) => h.cp.release({ services: { main: { image } } });
      const c1 = await release(r1);
      agent.triggerUpdate();
      await waitFor('release 1 running', () => reportedDone(h, uuid, c1), { timeoutMs: 30_000 });
      const first = await theContainer(h);

      // Closed for the next hours: release 2 is pulled, nothing else changes.
      await setFleetWindow(h, windowHoursAhead(12));
      const c2 = await release(r2);
      agent.triggerUpdate();
      await waitFor(
        'release 2 downloaded, the device waiting for its window',
        () =>
          h.cp.tap.state.get(uuid)?.status === 'Waiting for update window' &&
          reportedApp(h, uuid)?.releases[c2]?.update_status === 'downloaded',
        { timeoutMs: 30_000 },
      );
      assert.ok(await imagePresent(r2), 'the new image was pulled');
      assert.deepEqual(await theContainer(h), first, 'release 1 still runs, untouched');
      const opensAt = Date.parse(String(h.cp.tap.state.get(uuid)?.update_window_opens_at));
      assert.ok(opensAt > Date.now() + 10 * 3600_000, 'says when the window opens');
      await waitFor(
        'the server shows the wait',
        async () => (await h.cp.device(uuid)).updateWindowOpensAt === new Date(opensAt).toISOString(),
        { timeoutMs: 10_000 },
      );

      // A restart does not apply it: the window is in the persisted target.
      await agent.stop();
      agent = await startHarnessAgent(h);
      const pass = await agent.reconcileNow();
      assert.equal(pass.outcome.kind, 'retry-after', JSON.stringify(pass.outcome));
      assert.match(pass.outcome.kind === 'retry-after' ? pass.outcome.reason : '', /waits for its update window/);
      assert.deepEqual(await theContainer(h), first, 'still release 1 after the restart');

      // A forced update overrides the window, once.
      const forced = await h.cp.sendAction(uuid, { action: 'update', force: true });
      assert.equal(forced.status, 'done', JSON.stringify(forced));
      await waitFor('release 2 applied by the forced update', () => reportedDone(h, uuid, c2), { timeoutMs: 30_000 });
      assert.notEqual((await theContainer(h)).id, first.id, 'release 1 replaced, outside the window');

      const c3 = await release(r3);
      agent.triggerUpdate();
      await waitFor(
        'release 3 waits for the window again',
        () =>
          h.cp.tap.state.get(uuid)?.status === 'Waiting for update window' &&
          reportedApp(h, uuid)?.releases[c3]?.update_status === 'downloaded',
        { timeoutMs: 30_000 },
      );
      const second = await theContainer(h);

      // The window opens a few seconds from now: release 3 is applied then, not before.
      const opening = new Date(Math.ceil((Date.now() + 5_000) / 1000) * 1000);
      await setFleetWindow(h, windowAt(opening));
      await waitFor('release 3 applied inside the window', () => reportedDone(h, uuid, c3), { timeoutMs: 30_000 });
      const third = await theContainer(h);
      assert.notEqual(third.id, second.id);
      // Docker's Created is in whole seconds.
      assert.ok(third.created >= opening.getTime() - 1_000, `created ${third.created}, window opened ${+opening}`);
      assert.equal(h.cp.tap.state.get(uuid)?.update_window_opens_at, null, 'no wait reported any more');
    } finally {
      await agent.stop();
      await cleanup(h.namespace, [r1, r2local, r3, ...(r2 ? [r2] : [])]);
      await h.remove();
    }
  });

  it("the device's own rollback is not held back by a closed window", async () => {
    const h = await harness();
    const nonce = Math.random().toString(16).slice(2, 8);
    const r1 = `flotilla-agent-it/window-rollback:r1-${nonce}`;
    const r2 = `flotilla-agent-it/window-rollback:r2-${nonce}`;
    const agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    try {
      await Promise.all([buildImage(r1, 'r1'), buildScriptImage(r2, 'r2', CRASHES)]);
      await setSoak(h, FAILING_SOAK_SECONDS);
      const release = (image: string) => h.cp.release({ services: { main: { image } } });
      const c1 = await release(r1);
      agent.triggerUpdate();
      await waitFor('release 1 running', () => reportedDone(h, uuid, c1), { timeoutMs: 30_000 });
      await release(r2);
      agent.triggerUpdate();
      await waitFor('release 2 applied', mainOn(h, r2), { timeoutMs: 30_000, intervalMs: 50 });
      // Release 2 crash-loops (the device decides after 3 restarts); the window closes for the next hours first.
      const served = h.cp.tap.targetEtags.length;
      await setFleetWindow(h, windowHoursAhead(12));
      await waitFor('the device fetched its window', () => h.cp.tap.targetEtags.length > served, { timeoutMs: 10_000 });
      assert.ok(!(await mainRuns(h, 'r1')()), 'not back yet when the window closed');
      await waitFor('back on release 1, outside the window', mainRuns(h, 'r1'), { timeoutMs: 30_000 });
      assert.ok((await h.cp.device(uuid)).updateWindow, 'the window was still set');
    } finally {
      await agent.stop();
      await cleanup(h.namespace, [r1, r2]);
      await h.remove();
    }
  });
});
