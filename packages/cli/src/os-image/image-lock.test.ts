import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { lockImage, lockPathOf } from './image-lock.js';

let dir: { path: string; remove: () => Promise<void> };
let n = 0;
before(async () => {
  dir = await tempDir('flotilla-image-lock-');
});
after(async () => {
  await dir?.remove();
});

const image = () => join(dir.path, `image-${++n}.img`);
const busy = (e: unknown) => e instanceof FlotillaError && e.code === 'DISK_IMAGE_BUSY';
const holder = (fields: Record<string, unknown>) =>
  JSON.stringify({ host: hostname(), since: '2026-12-02T00:00:00.000Z', ...fields });

test('one holder at a time; released, it can be taken again, and nothing is left beside the image', async () => {
  const path = image();
  const lock = await lockImage(path);
  assert.equal(JSON.parse(await readFile(lock.path, 'utf8')).pid, process.pid);
  await assert.rejects(lockImage(path), busy);
  await lock.release();
  await (await lockImage(path)).release();
  assert.deepEqual(
    (await readdir(dir.path)).filter((name) => name.startsWith('image-1.')),
    [],
  );
});

test('a lock whose pid is gone, or reused by a process started at another time, is taken over', async () => {
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => dead.on('exit', resolve));
  for (const stale of [holder({ pid: dead.pid }), holder({ pid: process.pid, started: '1' })]) {
    const path = image();
    await writeFile(lockPathOf(path), stale);
    const lock = await lockImage(path);
    assert.equal(JSON.parse(await readFile(lock.path, 'utf8')).pid, process.pid);
    await lock.release();
  }
});

test('a live holder, one on another host, or a lock file that cannot be read is never taken over', async () => {
  for (const held of [holder({ pid: process.ppid }), holder({ pid: 1, host: 'elsewhere' }), 'not json']) {
    const path = image();
    await writeFile(lockPathOf(path), held);
    await assert.rejects(lockImage(path), busy);
    assert.equal(await readFile(lockPathOf(path), 'utf8'), held);
  }
});
