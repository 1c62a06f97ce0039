import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from '@flotilla/testkit';
import { exitOf, exitWithin, spawnAgent, type AgentProcess } from '../test-support/agent-process.js';
import {
  buildImage,
  cleanup,
  exec,
  harness,
  ourContainers,
  serviceOf,
  type Harness,
} from '../test-support/fixtures.js';
import {
  CRASHES,
  FAILING_SOAK_SECONDS,
  buildScriptImage,
  imagePresent,
  mainOn,
  mainRuns,
  reportedRollback,
  reportedRolledBack,
  setSoak,
} from '../test-support/rollback.js';

/** Runs well until /data/crash exists, then says so and exits 3 (at once on every restart after that). */
const CRASHES_ON_REQUEST = `trap 'exit 0' TERM; echo up; while [ ! -f /data/crash ]; do sleep 0.2; done; echo 'fatal: crash requested' >&2; exit 3`;

/** The device's system lines as the server keeps them. */
async function systemLines(h: Harness, uuid: string): Promise<string[]> {
  const { items } = (await h.cp.api('GET', `/api/v1/devices/${uuid}/logs?tail=500`)) as {
    items: Array<{ message: string; isSystem: boolean }>;
  };
  return items.filter((l) => l.isSystem).map((l) => l.message);
}

/** The uuid the agent wrote to config.json, once it has. */
async function uuidOf(h: Harness): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return waitFor('uuid in config.json', async () => {
    const config = JSON.parse(await readFile(h.configPath, 'utf8')) as { uuid?: string };
    return config.uuid;
  });
}

/**
 * The agent process is SIGKILLed while it watches a failing release, or in the middle of the rollback (a failpoint
 * in the executor: the failing release's container removed, the previous one not created yet). Restarted, it must
 * finish going back to release 1 from what it persisted, keep the volume, report the rollback, and never bring
 * release 2 back.
 */
describe('self-rollback survives kill -9', () => {
  for (const when of ['soak', 'rollback'] as const) {
    it(`during the ${when}`, async () => {
      const h = await harness();
      const n = Math.random().toString(16).slice(2, 8);
      const r1 = `flotilla-agent-it/rollback-kill-${when}:r1-${n}`;
      const r2 = `flotilla-agent-it/rollback-kill-${when}:r2-${n}`;
      const agents: AgentProcess[] = [];
      try {
        // During the soak: release 2 runs well while the first agent watches it, and crashes (for good: the file is
        // in the volume) only once that agent is dead, so the restarted one is what must see it and decide.
        const script2 = when === 'soak' ? CRASHES_ON_REQUEST : CRASHES;
        await Promise.all([buildImage(r1, 'r1'), buildScriptImage(r2, 'r2', script2)]);
        // During the soak: long enough for the kill to land inside it. During the rollback: a failure ends the watch
        // as soon as it is seen, and a short soak could end, on a loaded machine, before the crash loop shows (the
        // release then passes and the failpoint is never reached).
        await setSoak(h, when === 'soak' ? 60 : FAILING_SOAK_SECONDS);
        const release = (image: string) =>
          h.cp.release({ volumes: ['data'], services: { main: { image, compose: { volumes: ['data:/data'] } } } });
        // First kill: release 1's container replaced by release 2's; the second: release 2's, by the rollback.
        const first = spawnAgent(h, when === 'rollback' ? 'after:killContainer:2' : undefined);
        agents.push(first);
        const uuid = await uuidOf(h);
        const c1 = await release(r1);
        await waitFor('release 1 running', mainRuns(h, 'r1'), { timeoutMs: 60_000 });
        const main1 = (await ourContainers(h.namespace)).find((c) => serviceOf(c) === 'main') as { Id: string };
        await exec(main1.Id, 'echo survived > /data/file');

        const c2 = await release(r2);
        await waitFor('release 2 applied', mainOn(h, r2), { timeoutMs: 60_000, intervalMs: 50 });
        if (when === 'soak') {
          await waitFor(
            'the agent watches release 2',
            async () => (await systemLines(h, uuid)).some((l) => l.startsWith(`Watching release ${c2}`)),
            { timeoutMs: 30_000 },
          );
          // The watch begins once the container exists; it must also run before the agent dies, or nobody starts
          // it until the restart and there is nothing to crash in.
          await waitFor('release 2 running', mainRuns(h, 'r2'), { timeoutMs: 30_000, intervalMs: 50 });
          await exitOf(first.child, 'SIGKILL');
          const main2 = (await ourContainers(h.namespace)).find((c) => serviceOf(c) === 'main') as { Id: string };
          await exec(main2.Id, 'touch /data/crash');
        } else {
          const exit = await exitWithin(first, 90_000);
          assert.equal(exit.signal, 'SIGKILL', 'the failpoint was reached');
          assert.deepEqual(
            (await ourContainers(h.namespace)).filter((c) => serviceOf(c) === 'main'),
            [],
            'killed mid-rollback: release 2 gone, release 1 not back yet',
          );
        }

        // Every container the restarted agent makes is seen: release 2's must never come back.
        const restartedAt = Date.now();
        const again = spawnAgent(h);
        agents.push(again);
        const seen = new Set<string>();
        await waitFor(
          'back on release 1 after the restart',
          async () => {
            for (const c of await ourContainers(h.namespace)) seen.add(c.Image);
            return mainRuns(h, 'r1')();
          },
          { timeoutMs: 60_000, intervalMs: 50 },
        );
        if (when === 'rollback') assert.ok(!seen.has(r2), 'the refused release was not re-applied after the restart');
        await waitFor('rollback reported', () => reportedRolledBack(h, uuid, c2, c1), { timeoutMs: 30_000 });
        const main = (await ourContainers(h.namespace)).find((c) => serviceOf(c) === 'main') as { Id: string };
        assert.equal((await exec(main.Id, 'cat /data/file')).trim(), 'survived');
        // Decided once: during the rollback the decision persisted before the kill is the one carried out.
        const decidedAt = Date.parse(reportedRollback(h, uuid)?.at ?? '');
        if (when === 'rollback') assert.ok(decidedAt < restartedAt, 'the rollback was decided before the kill');
        else assert.ok(decidedAt >= restartedAt, 'the restarted agent went on watching and decided');
        const lines = await systemLines(h, uuid);
        assert.ok(lines.filter((l) => l.startsWith(`Rolling back from release ${c2}`)).length <= 1, 'decided once');
      } finally {
        for (const a of agents) await exitOf(a.child, 'SIGKILL');
        await cleanup(h.namespace, [r1, r2]);
        await h.remove();
      }
    });
  }
  it('during the soak of a good release: the soak goes on from when it started, not from the restart', async () => {
    const h = await harness();
    const n = Math.random().toString(16).slice(2, 8);
    const r1 = `flotilla-agent-it/rollback-kill-good:r1-${n}`;
    const r2 = `flotilla-agent-it/rollback-kill-good:r2-${n}`;
    // Long enough that an agent slow to start again (CI runs two suites at once) still tells a soak that went on
    // (about 3 s left after the restart) from one counted again (16 s or more).
    const soakMs = 16_000;
    const agents: AgentProcess[] = [];
    try {
      await Promise.all([buildImage(r1, 'r1'), buildImage(r2, 'r2')]);
      await setSoak(h, soakMs / 1000);
      const first = spawnAgent(h);
      agents.push(first);
      const uuid = await uuidOf(h);
      await h.cp.release({ services: { main: { image: r1 } } });
      await waitFor('release 1 running', mainRuns(h, 'r1'), { timeoutMs: 60_000 });
      const c2 = await h.cp.release({ services: { main: { image: r2 } } });
      await waitFor(
        'the agent watches release 2',
        async () => (await systemLines(h, uuid)).some((l) => l.startsWith(`Watching release ${c2}`)),
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      // The line reached the server after the watch began: the soak began at or before this instant.
      const watchedBy = Date.now();
      // Late in the soak, so a soak counted again from the restart would show.
      await new Promise((r) => setTimeout(r, soakMs - 3_000));
      await exitOf(first.child, 'SIGKILL');
      const restartedAt = Date.now();
      agents.push(spawnAgent(h));
      await waitFor('release 1 image pruned: release 2 kept', async () => !(await imagePresent(r1)), {
        timeoutMs: 30_000,
        intervalMs: 100,
      });
      const keptAfterRestartMs = Date.now() - restartedAt;
      console.log(
        `kill -9 ${soakMs - 3_000} ms into an ${soakMs} ms soak: release kept ${keptAfterRestartMs} ms after the restart, ${Date.now() - watchedBy} ms after the watch began`,
      );
      assert.ok(keptAfterRestartMs < soakMs - 4_000, `the soak was not started over (${keptAfterRestartMs} ms)`);
      assert.ok(await mainRuns(h, 'r2')());
    } finally {
      for (const a of agents) await exitOf(a.child, 'SIGKILL');
      await cleanup(h.namespace, [r1, r2]);
      await h.remove();
    }
  });
});
