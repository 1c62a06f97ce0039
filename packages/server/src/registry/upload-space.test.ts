import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { ABANDONED_UPLOAD_IDLE_MS, reclaimAbandonedUploads, withUploadSpace } from './upload-space.js';

test('abandoned uploads go most stale first, only until there is room; uploads in progress stay', async () => {
  const dir = await tempDir();
  try {
    const uploads = join(dir.path, 'uploads');
    await mkdir(uploads);
    const now = Date.now();
    const ages = { oldest: 5 * 3600_000, older: 2 * 3600_000, old: ABANDONED_UPLOAD_IDLE_MS + 1000, busy: 1000 };
    for (const [name, age] of Object.entries(ages)) {
      await writeFile(join(uploads, name), Buffer.alloc(10));
      await utimes(join(uploads, name), new Date(now - age), new Date(now - age));
    }
    let removedSoFar = 0;
    const freed = await reclaimAbandonedUploads(
      dir.path,
      async () => removedSoFar++ >= 2,
      ABANDONED_UPLOAD_IDLE_MS,
      now,
    );
    assert.deepEqual(freed, { removed: 2, bytes: 20 });
    assert.deepEqual(
      Object.keys(ages).filter((name) => existsSync(join(uploads, name))),
      ['old', 'busy'],
    );
    const all = await reclaimAbandonedUploads(dir.path, async () => false, ABANDONED_UPLOAD_IDLE_MS, now);
    assert.deepEqual(all, { removed: 1, bytes: 10 });
    assert.ok(existsSync(join(uploads, 'busy')), 'an upload touched a second ago is never abandoned');
  } finally {
    await dir.remove();
  }
});

test('a new upload on a low disk reclaims first and is refused only if that was not enough', async () => {
  const calls: string[] = [];
  let low = true;
  const space = {
    low: async () => low,
    reclaim: async () => {
      calls.push('reclaim');
    },
    noteNoSpace: async () => {
      calls.push('noted');
    },
  };
  await assert.rejects(
    withUploadSpace(space, true, async () => 'started'),
    (e: unknown) => (e as { code?: string }).code === 'STORAGE_FULL',
  );
  assert.deepEqual(calls, ['reclaim']);
  space.reclaim = async () => {
    calls.push('reclaim');
    low = false;
  };
  assert.equal(await withUploadSpace(space, true, async () => 'started'), 'started');
  const enospc = Object.assign(new Error('no space'), { code: 'ENOSPC' });
  low = false;
  calls.length = 0;
  await assert.rejects(
    withUploadSpace(space, false, async () => {
      throw enospc;
    }),
    enospc,
  );
  assert.deepEqual(calls, ['noted', 'reclaim'], 'a write that found no room is recorded and reclaims for the retry');
});
