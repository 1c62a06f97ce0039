import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { openDatabase } from './database.js';

/** The WAL index's frame count and how many of them are copied into the database (SQLite's wal.c layout). */
function walProgress(dir: string): { frames: number; backfilled: number } {
  const shm = readFileSync(join(dir, 'flotilla.db-shm'));
  return { frames: shm.readUInt32LE(16), backfilled: shm.readUInt32LE(96) };
}

test('the checkpoint thread copies the WAL into the database while the main thread only writes', async () => {
  const temp = await tempDir('flotilla-checkpoint-');
  const dir = temp.path;
  const opened = await openDatabase({ dataDir: dir });
  try {
    const sqlite = opened.sqlite!;
    const insert = sqlite.prepare('insert into organizations (name, handle, created_at) values (?, ?, ?)');
    // A few hundred commits, far below the 1,000 pages at which SQLite's own checkpoint would run on this thread.
    for (let i = 0; i < 150; i++) insert.run(`org ${i}`, `org-${i}`, 'now');
    const written = walProgress(dir);
    assert.ok(written.frames > 150 && written.frames < 1000, `${written.frames} frames in the WAL`);
    await sleep(1_000);
    const later = walProgress(dir);
    assert.equal(later.backfilled, later.frames, 'every frame was checkpointed, by the other thread');
    assert.ok(statSync(join(dir, 'flotilla.db')).size > 150 * 100, 'the rows are in the database file');
  } finally {
    await opened.close();
    await temp.remove();
  }
});
