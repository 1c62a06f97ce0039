import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { harness } from '../testing/harness.js';
import { collectGarbage, parseImageRef, releaseImages } from './gc.js';
import { RegistryStorage } from './storage.js';

const hexOf = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const DAY = 24 * 3600 * 1000;
const LATER = Date.now() + 2 * DAY;

/** A registry on disk, written the way the routes write it. */
async function registry() {
  const dir = await tempDir('flotilla-gc-');
  const storage = new RegistryStorage(dir.path);
  await storage.init();
  const blob = async (repository: string, content: string) => {
    const hex = hexOf(content);
    await storage.putBlobBytes(hex, Buffer.from(content));
    await storage.link(repository, hex);
    return hex;
  };
  const manifest = async (repository: string, body: unknown, tag?: string) => {
    const bytes = Buffer.from(JSON.stringify(body));
    const hex = hexOf(bytes);
    await storage.putBlobBytes(hex, bytes);
    await storage.putManifestLink(repository, hex, 'application/vnd.oci.image.manifest.v1+json');
    if (tag) await storage.putTag(repository, tag, `sha256:${hex}`);
    return hex;
  };
  const image = async (repository: string, layers: string[], tag?: string) => {
    const config = await blob(repository, `{"architecture":"amd64","os":"linux","n":${JSON.stringify(layers)}}`);
    const layerHexes = [];
    for (const layer of layers) layerHexes.push(await blob(repository, layer));
    const hex = await manifest(
      repository,
      {
        schemaVersion: 2,
        config: { digest: `sha256:${config}` },
        layers: layerHexes.map((h) => ({ digest: `sha256:${h}` })),
      },
      tag,
    );
    return { hex, config, layers: layerHexes, ref: `registry.test:8080/${repository}@sha256:${hex}` };
  };
  const blobExists = async (hex: string) => (await storage.blobSize(hex)) !== undefined;
  const blobCount = async () => {
    let n = 0;
    for (const prefix of await readdir(join(dir.path, 'blobs', 'sha256')))
      n += (await readdir(join(dir.path, 'blobs', 'sha256', prefix))).length;
    return n;
  };
  return { dir, storage, blob, manifest, image, blobExists, blobCount };
}

describe('registry garbage collection', () => {
  test('keeps what releases name (with shared layers and index children), removes the rest; young things stay', async () => {
    const r = await registry();
    try {
      const kept = await r.image('fleet/web', ['shared layer', 'kept-only layer'], 'c1');
      const dropped = await r.image('fleet/web', ['shared layer', 'dropped-only layer'], 'c2');
      const otherRepo = await r.image('other/db', ['shared layer', 'db layer']);
      // An index that a release names, and its child.
      const child = await r.image('fleet/multi', ['arm layer']);
      const index = await r.manifest(
        'fleet/multi',
        { schemaVersion: 2, manifests: [{ digest: `sha256:${child.hex}` }] },
        'latest',
      );
      // A failed push: blobs uploaded, no manifest.
      const orphan = await r.blob('fleet/web', 'orphan layer');
      const before = await r.blobCount();

      // Everything is young: nothing may go yet (a push in progress looks exactly like this).
      const early = await collectGarbage(r.storage, [kept.ref, 'registry.test:8080/fleet/multi:latest']);
      assert.deepEqual([early.manifestsRemoved, early.linksRemoved, early.blobsRemoved], [0, 0, 0]);

      const dry = await collectGarbage(r.storage, [kept.ref, 'registry.test:8080/fleet/multi:latest'], {
        now: LATER,
        dryRun: true,
      });
      assert.equal(await r.blobCount(), before, 'a dry run removes nothing');

      const result = await collectGarbage(r.storage, [kept.ref, 'registry.test:8080/fleet/multi:latest'], {
        now: LATER,
      });
      assert.deepEqual(dry, result, 'the dry run counted exactly what the real run removed');
      for (const hex of [kept.hex, kept.config, ...kept.layers, index, child.hex, child.config, ...child.layers])
        assert.ok(await r.blobExists(hex), `kept ${hex.slice(0, 8)}`);
      assert.equal(
        await r.storage.manifestMediaType('fleet/web', kept.hex),
        'application/vnd.oci.image.manifest.v1+json',
      );
      assert.equal(await r.storage.resolveTag('fleet/web', 'c1'), `sha256:${kept.hex}`);
      assert.equal(
        await r.storage.isLinked('fleet/web', kept.layers[0]!),
        true,
        'the shared layer stays linked where a kept image uses it',
      );

      for (const hex of [
        dropped.hex,
        dropped.config,
        dropped.layers[1]!,
        otherRepo.hex,
        otherRepo.config,
        otherRepo.layers[1]!,
        orphan,
      ])
        assert.equal(await r.blobExists(hex), false, `removed ${hex.slice(0, 8)}`);
      assert.equal(await r.storage.manifestMediaType('fleet/web', dropped.hex), undefined);
      assert.equal(
        await r.storage.resolveTag('fleet/web', 'c2'),
        undefined,
        'the tag of a removed manifest goes with it',
      );
      assert.equal(
        await r.storage.isLinked('other/db', otherRepo.layers[0]!),
        false,
        'a repository no release needs keeps no links',
      );
      assert.equal(result.manifestsRemoved, 2);
      assert.equal(result.tagsRemoved, 1);
      assert.equal(result.blobsRemoved, 7);
      assert.ok(result.bytesFreed > 0);
      assert.equal(result.blobsKept, await r.blobCount());

      const again = await collectGarbage(r.storage, [kept.ref, 'registry.test:8080/fleet/multi:latest'], {
        now: LATER,
      });
      assert.deepEqual(
        [again.manifestsRemoved, again.tagsRemoved, again.linksRemoved, again.blobsRemoved],
        [0, 0, 0, 0],
        'a second run finds nothing more',
      );
    } finally {
      await r.dir.remove();
    }
  });

  test('an old blob linked again just now (a mount for a new push) is kept; an unreadable kept manifest keeps its links', async () => {
    const r = await registry();
    try {
      const old = await r.image('fleet/a', ['layer a']);
      const reused = old.layers[0]!;
      await r.storage.link('fleet/b', reused); // the mount: a fresh link, so the blob is protected
      const past = new Date(Date.now() - 2 * DAY);
      await utimes(r.storage.blobPath(reused), past, past);
      // A manifest whose bytes are damaged: nothing it may use can be judged, so fleet/c keeps its links.
      await r.storage.putManifestLink('fleet/c', hexOf('damaged'), 'application/vnd.oci.image.manifest.v1+json');
      await r.storage.putBlobBytes(hexOf('damaged'), Buffer.from('damaged'));
      const cLayer = await r.blob('fleet/c', 'layer c');

      await collectGarbage(r.storage, [`host/fleet/c@sha256:${hexOf('damaged')}`], { now: Date.now() + DAY / 2 });
      assert.ok(await r.blobExists(reused), 'linked from fleet/b a moment ago');
      await collectGarbage(r.storage, [`host/fleet/c@sha256:${hexOf('damaged')}`], { now: LATER });
      assert.equal(await r.blobExists(reused), false, 'once the link is old too and no manifest uses it, it goes');
      assert.ok(await r.blobExists(cLayer), 'kept: the damaged manifest it might belong to is kept');
    } finally {
      await r.dir.remove();
    }
  });

  test('image references: digests and tags of this registry, anything else ignored', () => {
    const hex = 'a'.repeat(64);
    assert.deepEqual(parseImageRef(`127.0.0.1:8080/fleet/web@sha256:${hex}`), { repository: 'fleet/web', hex });
    assert.deepEqual(parseImageRef('flotilla.example/fleet/web:c1'), { repository: 'fleet/web', tag: 'c1' });
    assert.equal(parseImageRef('busybox'), undefined);
    assert.equal(parseImageRef('host/fleet/web@sha256:short'), undefined);
  });
});

for (const db of testDatabases()) {
  test(`[${db.label}] release images: every image of every release that has not failed`, async () => {
    const h = await harness(db);
    try {
      assert.equal((await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'gc', slug: 'gc' })).statusCode, 201);
      const composition = (image: string) => ({ services: { main: { image } } });
      await h.call('POST', '/api/v1/fleets/gc/releases', h.adminKey, {
        composition: composition('r.test/gc/main@sha256:1'),
        status: 'success',
      });
      await h.call('POST', '/api/v1/fleets/gc/releases', h.adminKey, {
        composition: composition('r.test/gc/main@sha256:2'),
        status: 'failed',
      });
      const running = await h.call('POST', '/api/v1/fleets/gc/releases', h.adminKey, {
        composition: composition('r.test/gc/main@sha256:3'),
      });
      assert.equal(running.data.status, 'running');
      assert.deepEqual((await releaseImages(h.app.flotilla.db)).sort(), [
        'r.test/gc/main@sha256:1',
        'r.test/gc/main@sha256:3',
      ]);
    } finally {
      await h.close();
    }
  });
}
