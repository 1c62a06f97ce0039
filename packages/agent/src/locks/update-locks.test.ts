import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import {
  AGENT_LOCK_MARK,
  HANDOVER_FILE,
  LOCK_FILE,
  releaseLocks,
  scanLocks,
  serviceLockDir,
  takeLocks,
} from './update-locks.js';

describe('scanLocks()', () => {
  it('finds locks and hand-over files of our namespace only', async () => {
    const dir = await tempDir();
    try {
      const put = async (ns: string, appId: number, service: string, file: string) => {
        const d = serviceLockDir(dir.path, ns, appId, service);
        await mkdir(d, { recursive: true });
        await writeFile(`${d}/${file}`, '');
      };
      await put('a-', 1, 'web', LOCK_FILE);
      await put('a-', 2, 'db', HANDOVER_FILE);
      await put('a-b-', 3, 'x', LOCK_FILE); // another agent whose namespace starts with ours
      await put('', 4, 'y', LOCK_FILE);
      await mkdir(serviceLockDir(dir.path, 'a-', 5, 'idle'), { recursive: true });
      const scan = await scanLocks(dir.path, 'a-');
      assert.deepEqual([...scan.lockedApps], [1]);
      assert.deepEqual([...scan.handoverComplete], ['2/db']);
      assert.deepEqual([...(await scanLocks(`${dir.path}/missing`, '')).lockedApps], []);
    } finally {
      await dir.remove();
    }
  });
});

describe('takeLocks() / releaseLocks()', () => {
  it("take all or none, tell the agent's locks from a service's, and release only the agent's", async () => {
    const dir = await tempDir();
    try {
      const web = serviceLockDir(dir.path, 'a-', 1, 'web');
      const db = serviceLockDir(dir.path, 'a-', 1, 'db');
      const cases: Array<{
        name: string;
        act: () => Promise<unknown>;
        returns?: boolean;
        locked: number[];
        agent: string[];
      }> = [
        {
          name: 'take both (folders created)',
          act: () => takeLocks([web, db]),
          returns: true,
          locked: [],
          agent: ['1/db', '1/web'],
        },
        {
          name: 'taking again keeps ours',
          act: () => takeLocks([web, db]),
          returns: true,
          locked: [],
          agent: ['1/db', '1/web'],
        },
        { name: 'release both', act: () => releaseLocks([web, db]), locked: [], agent: [] },
        { name: 'a service takes db', act: () => writeFile(join(db, LOCK_FILE), ''), locked: [1], agent: [] },
        { name: 'the agent then takes none', act: () => takeLocks([web, db]), returns: false, locked: [1], agent: [] },
        { name: "releasing leaves the service's lock", act: () => releaseLocks([web, db]), locked: [1], agent: [] },
      ];
      for (const c of cases) {
        const returned = await c.act();
        if (c.returns !== undefined) assert.equal(returned, c.returns, c.name);
        const scan = await scanLocks(dir.path, 'a-');
        assert.deepEqual([...scan.lockedApps], c.locked, `${c.name}: service locks`);
        assert.deepEqual([...scan.agentLocks].sort(), c.agent, `${c.name}: agent locks`);
      }
      assert.equal(await readFile(join(db, LOCK_FILE), 'utf8'), '', 'the service lock is untouched');
      assert.equal(AGENT_LOCK_MARK.trim(), 'flotilla-agent');
    } finally {
      await dir.remove();
    }
  });
});
