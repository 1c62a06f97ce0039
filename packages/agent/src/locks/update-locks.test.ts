import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { HANDOVER_FILE, LOCK_FILE, scanLocks, serviceLockDir } from './update-locks.js';

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
