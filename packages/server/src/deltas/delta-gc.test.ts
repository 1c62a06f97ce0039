import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { collectGarbage } from '../registry/gc.js';
import { RegistryStorage } from '../registry/storage.js';
import { DeltaStore, type ReadyPair } from './delta-store.js';

const hexOf = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const LATER = Date.now() + 2 * 24 * 3600 * 1000;

test('registry garbage collection removes the deltas of images no release keeps, and delta files no pair names', async () => {
  const dir = await tempDir('flotilla-delta-gc-');
  try {
    const storage = new RegistryStorage(dir.path);
    await storage.init();
    const deltas = new DeltaStore(dir.path);
    await deltas.init();
    const image = async (name: string) => {
      const config = Buffer.from(`{"n":"${name}"}`);
      await storage.putBlobBytes(hexOf(config), config);
      await storage.link('fleet/main', hexOf(config));
      const manifest = Buffer.from(
        JSON.stringify({ schemaVersion: 2, config: { digest: `sha256:${hexOf(config)}` }, layers: [] }),
      );
      const hex = hexOf(manifest);
      await storage.putBlobBytes(hex, manifest);
      await storage.putManifestLink('fleet/main', hex, 'application/vnd.oci.image.manifest.v1+json');
      return { hex, ref: `registry.test/fleet/main@sha256:${hex}` };
    };
    const delta = async (from: string, to: string, content: string) => {
      const work = await deltas.workDir();
      const file = join(work, 'delta');
      await writeFile(file, content);
      const pair: ReadyPair = {
        ok: true,
        digest: `sha256:${hexOf(content)}`,
        size: content.length,
        config: '{}',
        configDigest: `sha256:${hexOf('{}')}`,
        layers: [],
        pullBytes: 0,
      };
      await deltas.putPair(from, to, pair, file);
      return hexOf(content);
    };
    const [a, b, c] = [await image('a'), await image('b'), await image('c')];
    const kept = await delta(a.hex, b.hex, 'delta a to b');
    const dropped = await delta(a.hex, c.hex, 'delta a to c');
    // A delta file whose computation died before it wrote its pair.
    const stray = hexOf('stray delta');
    await mkdir(dirname(deltas.blobPath(stray)), { recursive: true });
    await writeFile(deltas.blobPath(stray), 'stray delta');

    // Now: nothing is old enough to go, the stray file included.
    const early = await collectGarbage(storage, [a.ref, b.ref]);
    assert.deepEqual([early.deltaPairsRemoved, early.deltasRemoved], [0, 0]);

    // Two days on, c is gone (no release names it), so is its delta; a to b stays.
    const result = await collectGarbage(storage, [a.ref, b.ref], { now: LATER });
    assert.equal(result.manifestsRemoved, 1);
    assert.deepEqual([result.deltaPairsRemoved, result.deltasRemoved], [1, 2]);
    assert.equal(result.deltaBytesFreed, 'delta a to c'.length + 'stray delta'.length);
    assert.deepEqual(await deltas.pairNames(), [`${a.hex}-${b.hex}.json`]);
    assert.equal(await deltas.blobSize(kept), 'delta a to b'.length);
    assert.equal(await deltas.blobSize(dropped), undefined);
    assert.equal(await deltas.blobSize(stray), undefined);
  } finally {
    await dir.remove();
  }
});
