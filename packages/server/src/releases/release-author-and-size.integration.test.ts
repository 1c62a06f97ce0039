import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Release } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { basicAuth } from '../testing/attacks.js';
import type { Harness } from '../testing/harness.js';
import { harness } from '../testing/harness.js';
import { type PushedImage, pushTinyImage, sha256Digest } from '../testing/registry-client.js';

/**
 * Who deployed a release and how big its images are, as the API shows them: the creator recorded on creation (and
 * null for rows from before it was), the size read from the registry's stored manifests (config plus layers, the
 * fleet's platform of an index), and null wherever the registry does not hold the image for this fleet.
 */
for (const testDb of testDatabases()) {
  describe(`a release's author and image sizes (${testDb.label})`, () => {
    let h: Harness;
    let base = '';
    let host = '';
    let auth = '';
    before(async () => {
      h = await harness(testDb);
      await h.app.listen({ host: '127.0.0.1', port: 0 });
      base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
      host = new URL(base).host;
      auth = basicAuth('admin', h.adminKey);
      for (const [slug, deviceType] of [
        ['sizes', 'generic-amd64'],
        ['sizes-arm', 'generic-aarch64'],
        ['other', 'generic-amd64'],
      ] as const) {
        const fleet = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: slug, slug, deviceType });
        assert.equal(fleet.statusCode, 201, fleet.body);
      }
    });
    after(() => h.close());

    /** What the registry serves for the image's config and layers: the bytes a device downloads. */
    const servedBytes = async (image: PushedImage) => {
      let total = 0;
      for (const digest of [image.configDigest, image.layerDigest]) {
        const res = await fetch(`${base}/v2/${image.repository}/blobs/${digest}`, {
          method: 'HEAD',
          headers: { authorization: auth },
        });
        assert.equal(res.status, 200);
        total += Number(res.headers.get('content-length'));
      }
      return total;
    };
    /** An index of `children` (image and platform) in `repository`, as `docker buildx` pushes multi-platform. */
    const pushIndex = async (repository: string, children: [PushedImage, string][]) => {
      const manifests = [];
      for (const [image, architecture] of children) {
        const res = await fetch(`${base}/v2/${repository}/manifests/${image.manifestDigest}`, {
          headers: { authorization: auth, accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        const size = (await res.arrayBuffer()).byteLength;
        manifests.push({
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: image.manifestDigest,
          size,
          platform: { os: 'linux', architecture },
        });
      }
      const index = Buffer.from(
        JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
      );
      const res = await fetch(`${base}/v2/${repository}/manifests/multi`, {
        method: 'PUT',
        headers: { authorization: auth, 'content-type': 'application/vnd.oci.image.index.v1+json' },
        body: index,
      });
      assert.equal(res.status, 201, await res.text());
      return sha256Digest(index);
    };
    const createRelease = async (slug: string, images: Record<string, string>): Promise<Release> => {
      const services = Object.fromEntries(Object.keys(images).map((name) => [name, { build: '.' }]));
      const res = await h.call('POST', `/api/v1/fleets/${slug}/releases`, h.adminKey, {
        composition: { services },
        images,
        status: 'success',
      });
      assert.equal(res.statusCode, 201, res.body);
      return res.data as Release;
    };
    const sizesOf = (release: Release) =>
      Object.fromEntries(release.services.map((s) => [s.name, s.imageSize] as const));

    test('the creator is recorded and named; each image counts its config and layers', async () => {
      const web = await pushTinyImage(base, auth, 'sizes/web', `web-${testDb.label}`);
      const foreign = await pushTinyImage(base, auth, 'other/api', `api-${testDb.label}`);
      const created = await createRelease('sizes', {
        web: `${host}/sizes/web@${web.manifestDigest}`,
        // Another fleet's image: it is not this fleet's to measure.
        api: `${host}/other/api@${foreign.manifestDigest}`,
        // Never pushed.
        db: `${host}/sizes/db@sha256:${'0'.repeat(64)}`,
        // Elsewhere than this registry.
        cache: 'docker.io/library/redis:7',
      });
      const expected = { web: await servedBytes(web), api: null, db: null, cache: null };
      assert.ok(expected.web > 0);
      const admin = (await h.call('GET', '/api/v1/whoami', h.adminKey)).data.user as { id: number; username: string };
      assert.equal(admin.username, 'admin');

      assert.deepEqual(created.createdBy, { id: admin.id, username: 'admin' });
      assert.deepEqual(sizesOf(created), expected);
      const got = (await h.call('GET', `/api/v1/releases/${created.id}`, h.adminKey)).data as Release;
      assert.deepEqual(got.createdBy, { id: admin.id, username: 'admin' });
      assert.deepEqual(sizesOf(got), expected);
      const listed = (await h.call('GET', '/api/v1/fleets/sizes/releases', h.adminKey)).data.items as Release[];
      assert.deepEqual(
        listed.map((r) => [r.id, r.createdBy?.username, sizesOf(r)]),
        [[created.id, 'admin', expected]],
      );
    });

    test("an index counts the image for the fleet's platform, by tag as well as by digest", async () => {
      const amd = await pushTinyImage(base, auth, 'sizes/app', `amd-${testDb.label}`);
      const arm = await pushTinyImage(base, auth, 'sizes/app', `arm-${testDb.label}-a-longer-seed`);
      const index = await pushIndex('sizes/app', [
        [amd, 'amd64'],
        [arm, 'arm64'],
      ]);
      const [amdBytes, armBytes] = [await servedBytes(amd), await servedBytes(arm)];
      assert.notEqual(amdBytes, armBytes);
      const release = await createRelease('sizes', {
        app: `${host}/sizes/app@${index}`,
        tagged: `${host}/sizes/app:multi`,
      });
      assert.deepEqual(sizesOf(release), { app: amdBytes, tagged: amdBytes });

      // The same index pushed to an arm64 fleet counts the arm64 image.
      const armCopy = await pushTinyImage(base, auth, 'sizes-arm/app', `arm-${testDb.label}-a-longer-seed`);
      const amdCopy = await pushTinyImage(base, auth, 'sizes-arm/app', `amd-${testDb.label}`);
      const armIndex = await pushIndex('sizes-arm/app', [
        [amdCopy, 'amd64'],
        [armCopy, 'arm64'],
      ]);
      assert.equal(armIndex, index, 'the same index, content-addressed');
      const onArm = await createRelease('sizes-arm', { app: `${host}/sizes-arm/app@${armIndex}` });
      assert.deepEqual(sizesOf(onArm), { app: armBytes });
    });

    test('a release made before creators were recorded has no author', async () => {
      const release = await createRelease('sizes', { solo: 'docker.io/library/busybox:1' });
      assert.equal(release.createdBy?.username, 'admin');
      // What the migration leaves on every existing row.
      await h.app.flotilla.db.updateTable('releases').set({ created_by: null }).where('id', '=', release.id).execute();
      const got = (await h.call('GET', `/api/v1/releases/${release.id}`, h.adminKey)).data as Release;
      assert.equal(got.createdBy, null);
      assert.equal(got.services[0]?.imageSize, null);
    });
  });
}
