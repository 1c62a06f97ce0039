import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { LayerCache, layersToEvict } from './layer-cache.js';

const entry = (name: string, bytes: number, usedMs: number) => ({ name, bytes, usedMs });

const cases: Array<{ name: string; entries: ReturnType<typeof entry>[]; limit: number; expected: string[] }> = [
  { name: 'under the bound: nothing', entries: [entry('a', 10, 1), entry('b', 10, 2)], limit: 20, expected: [] },
  { name: 'least recently used first', entries: [entry('a', 10, 5), entry('b', 10, 1)], limit: 15, expected: ['b'] },
  {
    name: 'as many as needed',
    entries: [entry('a', 10, 3), entry('b', 10, 1), entry('c', 10, 2)],
    limit: 10,
    expected: ['b', 'c'],
  },
  { name: 'bound 0: everything', entries: [entry('a', 1, 1), entry('b', 1, 1)], limit: 0, expected: ['a', 'b'] },
  { name: 'empty', entries: [], limit: 0, expected: [] },
];
for (const c of cases)
  test(`layersToEvict: ${c.name}`, () => assert.deepEqual(layersToEvict(c.entries, c.limit), c.expected));

const diffIdOf = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

test('LayerCache: a stored blob extracts to its bytes; a wrong or missing entry is refused and dropped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-layer-cache-'));
  try {
    const cache = new LayerCache(join(dir, 'cache'), 1_000_000);
    const layer = Buffer.from('layer bytes '.repeat(1000));
    const blob = join(dir, 'blob');
    await writeFile(blob, gzipSync(layer));
    await cache.store(diffIdOf(layer), blob);
    const out = join(dir, 'out');
    assert.equal(await cache.extract(diffIdOf(layer), out, AbortSignal.timeout(10_000)), true);
    assert.deepEqual(await readFile(out), layer);

    // An entry whose bytes are not its diffID's (a corrupted disk) is removed, never used.
    const other = Buffer.from('other');
    await writeFile(blob, gzipSync(layer));
    await cache.store(diffIdOf(other), blob);
    assert.equal(await cache.extract(diffIdOf(other), out, AbortSignal.timeout(10_000)), false);
    assert.equal(await cache.extract(diffIdOf(Buffer.from('absent')), out, AbortSignal.timeout(10_000)), false);
    assert.deepEqual(await readdir(join(dir, 'cache')), [`${diffIdOf(layer).slice(7)}.gz`]);

    // The writer's entry exists only once committed.
    const written = Buffer.from('rebuilt '.repeat(500));
    const writer = await cache.writer(diffIdOf(written));
    writer.stream.end(written);
    await writer.commit();
    assert.equal(await cache.extract(diffIdOf(written), out, AbortSignal.timeout(10_000)), true);
    assert.deepEqual(await readFile(out), written);
    const dropped = await cache.writer(diffIdOf(other));
    dropped.stream.write(other);
    await dropped.abort();
    assert.deepEqual(
      (await readdir(join(dir, 'cache'))).sort(),
      [`${diffIdOf(layer).slice(7)}.gz`, `${diffIdOf(written).slice(7)}.tar`].sort(),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('LayerCache: storing past the bound evicts the least recently used entry', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-layer-cache-'));
  try {
    const blobs = [0, 1, 2].map((i) => Buffer.from(`layer ${i} `.repeat(2000)));
    const size = gzipSync(blobs[0]!).length;
    const cache = new LayerCache(join(dir, 'cache'), 2 * size + size / 2);
    for (const [i, bytes] of blobs.entries()) {
      await writeFile(join(dir, 'blob'), gzipSync(bytes));
      await cache.store(diffIdOf(bytes), join(dir, 'blob'));
      if (i === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const out = join(dir, 'out');
    assert.equal(await cache.extract(diffIdOf(blobs[0]!), out, AbortSignal.timeout(10_000)), false);
    assert.equal(await cache.extract(diffIdOf(blobs[2]!), out, AbortSignal.timeout(10_000)), true);
    assert.ok((await cache.bytes()) <= 2 * size + size / 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('LayerCache: a writer dropped after its last byte (a rebuilt layer that failed its check) settles, and keeps nothing', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-layer-cache-'));
  try {
    const cache = new LayerCache(join(dir, 'cache'), 64 * 1024 * 1024);
    // Enough bytes that some are still on their way to the file when the abort comes: the case that once never
    // settled (pipeline() over a source destroyed after its end).
    for (let round = 0; round < 20; round++) {
      const writer = await cache.writer(diffIdOf(Buffer.from(`round ${round}`)));
      for (let i = 0; i < 16; i++)
        if (!writer.stream.write(Buffer.alloc(64 * 1024, i)))
          await new Promise((resolve) => writer.stream.once('drain', resolve));
      writer.stream.end();
      if (round % 2 === 1) await new Promise((resolve) => setImmediate(resolve));
      await Promise.race([
        writer.abort(),
        new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`abort ${round} hung`)), 5_000)),
      ]);
    }
    assert.deepEqual(await readdir(join(dir, 'cache')), []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('LayerCache.shrinkBy: frees at least what is asked, least recently used first, past its bound', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-layer-cache-'));
  try {
    const cache = new LayerCache(join(dir, 'cache'), 1_000_000_000);
    const blobs = [0, 1, 2].map((i) => Buffer.from(`entry ${i} `.repeat(3000)));
    for (const bytes of blobs) {
      const writer = await cache.writer(diffIdOf(bytes));
      writer.stream.end(bytes);
      await writer.commit();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const size = blobs[0]!.length;
    assert.equal(await cache.shrinkBy(size + 1), 2 * size, 'two entries for a bit more than one');
    assert.deepEqual(await readdir(join(dir, 'cache')), [`${diffIdOf(blobs[2]!).slice(7)}.tar`]);
    assert.equal(await cache.shrinkBy(0), 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
