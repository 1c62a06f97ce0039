import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '@flotilla/testkit';
import {
  buildImage,
  cleanup,
  exec,
  harness,
  ourContainers,
  reportedDone,
  serviceOf,
  startHarnessAgent,
} from '../test-support/fixtures.js';
import {
  CRASHES,
  FAILING_SOAK_SECONDS,
  RUNS_WELL,
  TEST_SOAK_SECONDS,
  buildScriptImage,
  imagePresent,
  mainOn,
  mainRuns,
  reportedRollback,
  reportedRolledBack,
  setSoak,
} from '../test-support/rollback.js';

const nonce = () => Math.random().toString(16).slice(2, 8);

/**
 * Release 1 runs well and holds data in a named volume; release 2 fails in the way each case says. The device must
 * go back to release 1 by itself (its image still local), keep the volume, report why with the failing service's
 * last lines, and not try release 2 again.
 */
async function rollbackScenario(o: {
  name: string;
  release2: (tag: string) => Promise<string>;
  compose2?: Record<string, unknown>;
  reason: RegExp;
  logLine?: string;
  /** Cut the control plane off once release 2 runs, for the whole soak and the rollback. */
  offline?: boolean;
}): Promise<void> {
  const h = await harness();
  const n = nonce();
  const r1 = `flotilla-agent-it/rollback-${o.name}:r1-${n}`;
  const r2 = `flotilla-agent-it/rollback-${o.name}:r2-${n}`;
  const agent = await startHarnessAgent(h);
  const uuid = agent.state().uuid;
  try {
    await Promise.all([buildImage(r1, 'r1'), o.release2(r2)]);
    await setSoak(h, FAILING_SOAK_SECONDS);
    const release = (image: string, compose: Record<string, unknown> = {}) =>
      h.cp.release({
        volumes: ['data'],
        services: { main: { image, compose: { volumes: ['data:/data'], ...compose } } },
      });
    const c1 = await release(r1);
    agent.triggerUpdate();
    await waitFor('release 1 done', () => reportedDone(h, uuid, c1), { timeoutMs: 30_000 });
    const [first] = await ourContainers(h.namespace);
    await exec((first as { Id: string }).Id, 'echo kept > /data/file');

    const c2 = await release(r2, o.compose2);
    agent.triggerUpdate();
    await waitFor('release 2 applied', mainOn(h, r2), { timeoutMs: 30_000, intervalMs: 50 });
    if (o.offline) await h.cp.tap.down();
    const started = Date.now();
    // WARNING: 18–29 s in CI runs with a 20 s soak (the release's failures counted, then the way back): a 30 s
    // limit failed on a slower machine. The limit only bounds a failure to roll back at all.
    await waitFor('back on release 1', mainRuns(h, 'r1'), { timeoutMs: 90_000 });
    const tookMs = Date.now() - started;
    console.log(`${o.name}: back on release 1 ${tookMs} ms after release 2 ran (soak ${FAILING_SOAK_SECONDS} s)`);
    assert.ok(await imagePresent(r1), 'release 1 image kept for the way back');
    const main = (await ourContainers(h.namespace)).find((c) => serviceOf(c) === 'main') as { Id: string };
    assert.equal((await exec(main.Id, 'cat /data/file')).trim(), 'kept', 'the named volume stays');

    if (o.offline) await h.cp.tap.up();
    await waitFor('rollback reported', () => reportedRolledBack(h, uuid, c2, c1), { timeoutMs: 60_000 });
    const rollback = reportedRollback(h, uuid);
    assert.ok(rollback);
    assert.match(rollback.reason, o.reason);
    assert.equal(rollback.service, 'main');
    if (o.logLine) assert.ok(rollback.logs.includes(o.logLine), `last lines: ${JSON.stringify(rollback.logs)}`);
    assert.ok(Date.parse(rollback.at) >= started - 60_000);
    const device = await h.cp.device(uuid);
    assert.equal(device.rollback?.fromCommit, c2, 'the server keeps the rollback and shows it on the device');

    // Not tried again: passes go by (the target still names release 2) and release 1 keeps running, untouched.
    const passes = agent.state().passes;
    await waitFor('three more passes', () => agent.state().passes >= passes + 3, { timeoutMs: 15_000 });
    const after = await ourContainers(h.namespace);
    assert.deepEqual(
      after.map((c) => c.Id),
      [main.Id],
      'release 2 is not retried',
    );
  } finally {
    await agent.stop();
    await cleanup(h.namespace, [r1, r2]);
    await h.remove();
  }
}

// One test at a time: six agents with crash-looping containers at once kept the engine so busy in CI (load 10-12 on
// two cores) that a docker exec in a check took past its limit and rollbacks past 30 s.
describe('self-rollback (real engine, real server)', () => {
  it('crash loop → back to the previous release', () =>
    rollbackScenario({
      name: 'crash',
      release2: (tag) => buildScriptImage(tag, 'r2', CRASHES),
      reason: /restarted \d+ times/,
      logLine: 'fatal: cannot open /etc/app.conf',
    }));

  it('unhealthy by its compose healthcheck → back to the previous release', () =>
    rollbackScenario({
      name: 'unhealthy',
      release2: (tag) => buildScriptImage(tag, 'r2', `echo 'listening on :80 (not really)'; ${RUNS_WELL}`),
      compose2: { healthcheck: { test: ['CMD', 'false'], interval: '300ms', timeout: '1s', retries: 2 } },
      reason: /unhealthy by its healthcheck/,
      logLine: 'listening on :80 (not really)',
    }));

  it('non-zero exits (restart: on-failure) → back to the previous release', () =>
    rollbackScenario({
      name: 'exits',
      release2: (tag) => buildScriptImage(tag, 'r2', CRASHES),
      compose2: { restart: 'on-failure' },
      reason: /exited non-zero \(last exit code 3\)/,
      logLine: 'starting release 2',
    }));

  it('control plane unreachable during the soak and the rollback', () =>
    rollbackScenario({
      name: 'offline',
      release2: (tag) => buildScriptImage(tag, 'r2', CRASHES),
      reason: /restarted \d+ times/,
      offline: true,
    }));

  it('a good release is kept after its soak; then the previous images go', async () => {
    const h = await harness();
    const n = nonce();
    const r1 = `flotilla-agent-it/rollback-good:r1-${n}`;
    const r2 = `flotilla-agent-it/rollback-good:r2-${n}`;
    const agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    try {
      await Promise.all([buildImage(r1, 'r1'), buildScriptImage(r2, 'r2', RUNS_WELL)]);
      await setSoak(h, TEST_SOAK_SECONDS);
      const c1 = await h.cp.release({ services: { main: { image: r1 } } });
      agent.triggerUpdate();
      await waitFor('release 1 done', () => reportedDone(h, uuid, c1), { timeoutMs: 30_000 });
      const c2 = await h.cp.release({
        services: { main: { image: r2, compose: { healthcheck: { test: ['CMD', 'true'], interval: '300ms' } } } },
      });
      agent.triggerUpdate();
      await waitFor('release 2 done', () => reportedDone(h, uuid, c2), { timeoutMs: 30_000 });
      const applied = Date.now();
      // During the soak the way back stays local: release 1's image is kept although nothing uses it.
      await waitFor(
        'release 2 healthy',
        async () => (await ourContainers(h.namespace))[0]?.Status.includes('(healthy)'),
        {
          timeoutMs: 10_000,
        },
      );
      // The device says so too: rollouts wait for `healthy` where a service has a healthcheck.
      await waitFor('release 2 reported healthy', () => {
        const apps = Object.values(h.cp.tap.state.get(uuid)?.apps ?? {});
        return apps.some((app) => app.releases?.[c2]?.services?.main?.health === 'healthy');
      });
      assert.ok(await imagePresent(r1), 'release 1 image kept during the soak');
      await waitFor('release 1 image pruned once release 2 is kept', async () => !(await imagePresent(r1)), {
        timeoutMs: 30_000,
      });
      const keptAfterMs = Date.now() - applied;
      console.log(`good release: previous image pruned ${keptAfterMs} ms after release 2 was applied`);
      assert.ok(keptAfterMs >= TEST_SOAK_SECONDS * 1000 - 1_000, `not before the soak ended (${keptAfterMs} ms)`);
      assert.ok(await mainRuns(h, 'r2')());
      assert.equal(reportedRollback(h, uuid), null);
      assert.equal(h.cp.tap.state.get(uuid)?.update_failed, false);
    } finally {
      await agent.stop();
      await cleanup(h.namespace, [r1, r2]);
      await h.remove();
    }
  });

  it('a forced update tries the refused release again; a new release is taken as usual', async () => {
    const h = await harness();
    const n = nonce();
    const r1 = `flotilla-agent-it/rollback-retry:r1-${n}`;
    const r2local = `flotilla-agent-it/rollback-retry:r2-${n}`;
    const r3 = `flotilla-agent-it/rollback-retry:r3-${n}`;
    let r2 = '';
    const agent = await startHarnessAgent(h);
    const uuid = agent.state().uuid;
    try {
      await Promise.all([
        buildImage(r1, 'r1'),
        buildScriptImage(r2local, 'r2', CRASHES),
        buildScriptImage(r3, 'r3', RUNS_WELL),
      ]);
      // Pulled from the server's registry: the refused release's image is pruned, a retry fetches it again.
      r2 = await h.cp.push(r2local, 'main');
      await setSoak(h, FAILING_SOAK_SECONDS);
      const c1 = await h.cp.release({ services: { main: { image: r1 } } });
      agent.triggerUpdate();
      await waitFor('release 1 done', () => reportedDone(h, uuid, c1), { timeoutMs: 30_000 });
      const c2 = await h.cp.release({ services: { main: { image: r2 } } });
      agent.triggerUpdate();
      await waitFor('rolled back once', () => reportedRolledBack(h, uuid, c2, c1), { timeoutMs: 120_000 });
      const firstAt = reportedRollback(h, uuid)?.at;

      agent.triggerUpdate({ force: true });
      await waitFor('release 2 tried again', mainOn(h, r2), { timeoutMs: 30_000, intervalMs: 50 });
      await waitFor(
        'rolled back again',
        () => reportedRolledBack(h, uuid, c2, c1) && reportedRollback(h, uuid)?.at !== firstAt,
        { timeoutMs: 120_000 },
      );
      // WARNING: 18–29 s in CI runs with a 20 s soak (the release's failures counted, then the way back): a 30 s
      // limit failed on a slower machine. The limit only bounds a failure to roll back at all.
      await waitFor('back on release 1', mainRuns(h, 'r1'), { timeoutMs: 90_000 });

      const c3 = await h.cp.release({ services: { main: { image: r3 } } });
      agent.triggerUpdate();
      await waitFor('release 3 done', () => reportedDone(h, uuid, c3), { timeoutMs: 30_000 });
      await waitFor('refusal over', () => reportedRollback(h, uuid) === null, { timeoutMs: 15_000 });
      assert.ok(await mainRuns(h, 'r3')());
      assert.equal((await h.cp.device(uuid)).rollback, null, 'the server no longer shows a rollback');
    } finally {
      await agent.stop();
      await cleanup(h.namespace, [r1, r2local, r3, ...(r2 ? [r2] : [])]);
      await h.remove();
    }
  });
});
