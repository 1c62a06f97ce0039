import assert from 'node:assert/strict';
import { chmod, lstat, mkdir, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { waitFor } from '@flotilla/testkit';
import type { startAgent } from '../agent.js';
import { buildTalkingImage, cleanup, harness, ourContainers, startHarnessAgent } from '../test-support/fixtures.js';

interface Entry {
  mode: number;
  dir: boolean;
}

/** Every folder and file under `root` (links are listed by the folder, not followed), with permission bits. */
async function modes(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (path: string): Promise<void> => {
    const s = await lstat(path);
    if (s.isSymbolicLink()) return;
    out.set(relative(root, path) || '.', { mode: s.mode & 0o777, dir: s.isDirectory() });
    if (s.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(root);
  return out;
}

const readableByOthers = (all: Map<string, Entry>): string[] =>
  [...all].filter(([, e]) => (e.mode & 0o077) !== 0).map(([path, e]) => `${path} ${e.mode.toString(8)}`);

describe('the agent data folder is private', () => {
  it('a fresh start creates nothing others can read, and a start tightens what was left readable', async () => {
    const h = await harness({ persistentLogging: true });
    const img = `flotilla-agent-it/private:${Math.random().toString(16).slice(2, 8)}`;
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    const start = () => startHarnessAgent(h);
    try {
      await buildTalkingImage(img);
      agent = await start();
      const uuid = agent.state().uuid;
      await waitFor('registration', () => h.cp.registered(uuid));
      await h.cp.release({ services: { main: { image: img } } });
      agent.triggerUpdate();
      await waitFor('main running', async () => (await ourContainers(h.namespace)).some((c) => c.State === 'running'), {
        timeoutMs: 60_000,
      });
      await waitFor(
        'service lines shipped',
        async () =>
          ((await h.cp.api('GET', `/api/v1/devices/${uuid}/logs?tail=50`)).items as Array<{ message: string }>).some(
            (l) => l.message.startsWith('tick'),
          ),
        { timeoutMs: 30_000 },
      );
      // Written once a second: the log queue cursor and the followed containers' positions.
      await waitFor(
        'the log cursor and positions written',
        async () => {
          const all = await modes(h.dataDir);
          return all.has('logs/cursor.json') && all.has('log-positions.json');
        },
        { timeoutMs: 10_000 },
      );

      // Fresh: everything the agent made while running (the store with its WAL, log queue, positions, lock folders).
      const fresh = await modes(h.dataDir);
      for (const expected of [
        '.',
        'agent.sqlite',
        'agent.sqlite-wal',
        'agent.sqlite-shm',
        'log-positions.json',
        'logs',
        'logs/cursor.json',
        'services',
      ])
        assert.ok(fresh.has(expected), `${expected} exists (has ${[...fresh.keys()].join(', ')})`);
      assert.ok(
        [...fresh.keys()].some((p) => p.startsWith('logs/') && p.endsWith('.ndjson')),
        'a log segment',
      );
      assert.ok(
        [...fresh.keys()].some((p) => p.split('/').length === 3 && p.startsWith('services/')),
        'a lock folder',
      );
      assert.deepEqual(readableByOthers(fresh), [], 'made private');
      // config.json was written by the agent (its identity) and holds the device key.
      assert.equal((await stat(h.configPath)).mode & 0o077, 0, 'config.json private');
      await agent.stop();
      agent = undefined;

      // Left readable (an older agent, a restore from backup), with a link out and a service's own lock file.
      // SQLite removed its -wal and -shm on the clean stop: left behind (empty) as after a power cut.
      for (const name of ['agent.sqlite-wal', 'agent.sqlite-shm']) await writeFile(join(h.dataDir, name), '');
      const all = await modes(h.dataDir);
      for (const [path, entry] of all) await chmod(join(h.dataDir, path), entry.dir ? 0o755 : 0o644);
      const outside = join(h.dir, 'outside.txt');
      await writeFile(outside, 'not the agent’s', { mode: 0o644 });
      await chmod(outside, 0o644);
      await symlink(outside, join(h.dataDir, 'link-out'));
      const lockDir = [...all.keys()].find((p) => p.split('/').length === 3 && p.startsWith('services/'))!;
      await mkdir(join(h.dataDir, lockDir), { recursive: true });
      await writeFile(join(h.dataDir, lockDir, 'updates.lock'), '', { mode: 0o644 });
      await chmod(join(h.dataDir, lockDir, 'updates.lock'), 0o644);
      const loose = readableByOthers(await modes(h.dataDir));
      assert.ok(loose.length >= all.size, `loosened: ${loose.join(', ')}`);

      agent = await start();
      const tightened = await modes(h.dataDir);
      const theirs = [`${lockDir}/updates.lock 644`];
      assert.deepEqual(readableByOthers(tightened), theirs, 'private again; only the service’s own file left as is');
      assert.equal((await stat(outside)).mode & 0o777, 0o644, 'a link out of the folder is not followed');
      console.log(
        `# data folder: ${fresh.size} entries created private on a fresh start; ${loose.length - 1} of ${loose.length} left readable tightened on start (the other: a service's own lock file)`,
      );
    } finally {
      await agent?.stop();
      await cleanup(h.namespace, [img]);
      await h.remove();
    }
  });
});
