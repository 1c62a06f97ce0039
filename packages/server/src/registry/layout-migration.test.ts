import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, rename, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { harness } from '../testing/harness.js';
import { migrateRepositoryLayout } from './layout-migration.js';
import { RegistryStorage } from './storage.js';

const hexOf = (data: string) => createHash('sha256').update(data).digest('hex');
const HOUR = 3600 * 1000;

/** Writes a file of the first layout, `repositories/<repository>/<kind>/<name>`, dated `at`. */
async function legacyFile(root: string, repository: string, kind: string, name: string, content: string, at: number) {
  const file = join(root, 'repositories', repository, kind, name);
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, content);
  await utimes(file, at / 1000, at / 1000);
}

for (const db of testDatabases()) {
  test(`[${db.label}] the first layout moves to fleet uuids: only what the slug's current fleet wrote, crash-safe`, async () => {
    const h = await harness(db);
    const dir = await tempDir('flotilla-layout-');
    try {
      assert.equal(
        (await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'kept', slug: 'kept' })).statusCode,
        201,
      );
      const fleet = await h.app.flotilla.db
        .selectFrom('fleets')
        .select(['uuid', 'created_at'])
        .where('slug', '=', 'kept')
        .executeTakeFirstOrThrow();
      const created = Date.parse(fleet.created_at);
      const storage = new RegistryStorage(dir.path);
      await storage.init();
      const blob = async (content: string) => {
        const hex = hexOf(content);
        await storage.putBlobBytes(hex, Buffer.from(content));
        return hex;
      };
      // Written by an earlier fleet with the same slug: an old image, its tag and a layer only it used.
      const oldLayer = await blob('old layer');
      const oldManifest = await blob(JSON.stringify({ config: { digest: `sha256:${oldLayer}` }, layers: [] }));
      // Written by the current fleet: a manifest that uses a layer the old fleet had pushed (a push that found it
      // there did not link it again), and a layer of its own.
      const sharedLayer = await blob('shared layer');
      const newLayer = await blob('new layer');
      const newManifest = await blob(
        JSON.stringify({ config: { digest: `sha256:${newLayer}` }, layers: [{ digest: `sha256:${sharedLayer}` }] }),
      );
      const before = created - HOUR;
      const after = created + HOUR;
      const type = 'application/vnd.oci.image.manifest.v1+json';
      await legacyFile(dir.path, 'kept/web', '_blobs', oldLayer, '', before);
      await legacyFile(dir.path, 'kept/web', '_manifests', oldManifest, type, before);
      await legacyFile(dir.path, 'kept/web', '_tags', 'old', `sha256:${oldManifest}`, before);
      await legacyFile(dir.path, 'kept/web', '_blobs', sharedLayer, '', before);
      await legacyFile(dir.path, 'kept/web', '_blobs', newLayer, '', after);
      await legacyFile(dir.path, 'kept/web', '_manifests', newManifest, type, after);
      await legacyFile(dir.path, 'kept/web', '_tags', 'new', `sha256:${newManifest}`, after);
      // A repository of a fleet that no longer exists.
      await legacyFile(dir.path, 'gone/web', '_blobs', oldLayer, '', after);

      // A run cut short after moving the manifest: the layer it uses must still move on the next run.
      const key = `${fleet.uuid}/web`;
      await mkdir(join(storage.repositoriesDir, key, '_manifests'), { recursive: true });
      await rename(
        join(dir.path, 'repositories', 'kept/web', '_manifests', newManifest),
        join(storage.repositoriesDir, key, '_manifests', newManifest),
      );

      const result = await migrateRepositoryLayout(storage, h.app.flotilla.db);
      assert.deepEqual(result, { moved: 3, dropped: 4 });
      assert.equal(await storage.manifestMediaType(key, newManifest), type);
      assert.equal(await storage.resolveTag(key, 'new'), `sha256:${newManifest}`);
      assert.ok(await storage.isLinked(key, newLayer));
      assert.ok(await storage.isLinked(key, sharedLayer), "a layer the fleet's manifest uses moves, however old");
      assert.equal(await storage.manifestMediaType(key, oldManifest), undefined, "the earlier fleet's image stays out");
      assert.equal(await storage.resolveTag(key, 'old'), undefined);
      assert.equal(await storage.isLinked(key, oldLayer), false);
      assert.deepEqual(await readdir(dir.path).then((names) => names.includes('repositories')), false);
      assert.deepEqual(await readdir(storage.repositoriesDir), [fleet.uuid], 'nothing of the deleted fleet moved');

      // Running again (another node, a restart) changes nothing.
      assert.deepEqual(await migrateRepositoryLayout(storage, h.app.flotilla.db), { moved: 0, dropped: 0 });
      assert.ok(await storage.isLinked(key, sharedLayer));
    } finally {
      await h.close();
      await dir.remove();
    }
  });
}
