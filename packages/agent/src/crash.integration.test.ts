import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { describe, it } from 'node:test';
import { waitFor } from '@flotilla/testkit';
import { buildImage, cleanup, docker, exec, harness, ourContainers, serviceOf } from './test-support/fixtures.js';
import { exitOf, exitWithin, spawnAgent } from './test-support/agent-process.js';

/**
 * Each case SIGKILLs the agent process at one instant of an update (a failpoint inside the executor does the
 * kill -9, so the instant is exact, not timing luck), restarts it, and checks the device converges with one
 * container per service and the named volume's data intact.
 */
describe('kill -9 mid-update, then restart', { concurrency: true }, () => {
  const cases: Array<{ failpoint: string; phase: 'install' | 'update'; pulled?: boolean }> = [
    { failpoint: 'after:createNetwork', phase: 'install' },
    { failpoint: 'after:killContainer', phase: 'update' },
    { failpoint: 'after:createContainer', phase: 'update' },
    { failpoint: 'before:startContainer', phase: 'update' },
    { failpoint: 'after:fetch', phase: 'update', pulled: true },
  ];
  for (const c of cases) {
    it(`${c.failpoint} during ${c.phase}${c.pulled ? ' (pulled image)' : ''}`, async () => {
      const h = await harness();
      const nonce = Math.random().toString(16).slice(2, 8);
      const r1 = `flotilla-agent-it/crash:r1-${nonce}`;
      const r2local = `flotilla-agent-it/crash:r2-${nonce}`;
      let r2 = r2local;
      const agents: ChildProcess[] = [];
      try {
        await Promise.all([buildImage(r1, 'r1'), buildImage(r2local, 'r2')]);
        if (c.pulled) {
          r2 = await h.cp.push(r2local, 'main');
          await docker.getImage(r2local).remove();
        }
        const release = (n: number, image: string) =>
          h.cp.release({
            volumes: ['data'],
            services: {
              main: { image, environment: { N: String(n) }, compose: { volumes: ['data:/data'] } },
              side: { image: r1, environment: { N: String(n) } },
            },
          });
        const converged = (marker: string) => async (): Promise<boolean> => {
          const list = await ourContainers(h.namespace);
          if (list.length !== 2 || list.some((x) => x.State !== 'running')) return false;
          const main = list.find((x) => serviceOf(x) === 'main');
          return main !== undefined && (await exec(main.Id, 'cat /release')).trim() === marker;
        };

        const first = spawnAgent(h, c.phase === 'install' ? c.failpoint : undefined);
        agents.push(first.child);
        await release(1, r1);
        if (c.phase === 'install') {
          const exit = await exitWithin(first, 90_000);
          assert.equal(exit.signal, 'SIGKILL', `the failpoint ${c.failpoint} was reached`);
          const again = spawnAgent(h);
          agents.push(again.child);
        }
        await waitFor('release 1 running', converged('r1'), { timeoutMs: 60_000 });
        const main1 = (await ourContainers(h.namespace)).find((x) => serviceOf(x) === 'main') as { Id: string };
        await exec(main1.Id, 'echo survived > /data/file');

        if (c.phase === 'update') {
          await Promise.all(
            agents.map((a) => (a.exitCode !== null || a.signalCode !== null ? undefined : exitOf(a, 'SIGKILL'))),
          );
          await release(2, r2);
          const crashing = spawnAgent(h, c.failpoint);
          agents.push(crashing.child);
          const exit = await exitWithin(crashing, 90_000);
          assert.equal(exit.signal, 'SIGKILL', `the failpoint ${c.failpoint} was reached`);
          const again = spawnAgent(h);
          agents.push(again.child);
          await waitFor('release 2 running after restart', converged('r2'), { timeoutMs: 60_000 });
        }
        // Stable: no duplicate appears and nothing flaps after convergence. Quiet for a while is what is checked.
        await new Promise((r) => setTimeout(r, 1_000));
        const final = await ourContainers(h.namespace);
        assert.deepEqual(final.map(serviceOf).sort(), ['main', 'side']);
        assert.ok(final.every((x) => x.State === 'running'));
        const main = final.find((x) => serviceOf(x) === 'main') as { Id: string };
        assert.equal((await exec(main.Id, 'cat /data/file')).trim(), 'survived');
        if (c.phase === 'update') assert.equal((await exec(main.Id, 'cat /release')).trim(), 'r2');
      } finally {
        for (const a of agents) a.kill('SIGKILL');
        await cleanup(h.namespace, [r1, r2local, r2]);
        await h.remove();
      }
    });
  }
});
