import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { osDeltaAnswerSchema, osRepository, type OsDeltaDescriptor } from '@flotilla/protocol';
import { osImagePair, testDatabases, waitFor } from '@flotilla/testkit';
import { collectFleetGarbage } from '../registry/fleet-repositories.js';
import { RegistryStorage } from '../registry/storage.js';
import { basicAuth } from '../testing/attacks.js';

import { pushOsImage } from '../testing/os-release-image.js';
import { twoTenants, type Tenant, type TwoTenants } from '../testing/tenants.js';
import { DeltaStore } from './delta-store.js';

const run = promisify(execFile);
const TYPE = 'generic-amd64';
const hexOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * OS deltas through the real server on both dialects: a device asks for the delta from the OS it runs (by version
 * or by image) to an OS release of its organization; the server computes it with xdelta3 (pending meanwhile),
 * serves it with Range, and it decodes to the release's image. Another organization's release, another device
 * type's, or a pair whose delta is no gain are refused; registry garbage collection removes the deltas of a deleted
 * release.
 */
for (const testDb of testDatabases()) {
  describe(`OS deltas (${testDb.label})`, () => {
    let t: TwoTenants;
    let orgA: number;
    let pair: Awaited<ReturnType<typeof osImagePair>>;
    const ids = new Map<string, number>();
    before(async () => {
      t = await twoTenants(testDb);
      const orgs = await t.call('GET', '/api/v1/organizations', { key: t.a.token });
      orgA = orgs.data.items.find((o: { handle: string }) => o.handle === t.a.org).id;
      pair = await osImagePair(t.outerDir, { mib: 16, files: 40, fileBytes: 200_000 });
      const record = async (x: Tenant, org: number, deviceType: string, version: string, slot: Buffer) => {
        const pushed = await pushOsImage(t.url, basicAuth(x.username, x.apiKey), osRepository(org, deviceType), slot, {
          deviceType,
          version,
        });
        assert.equal(pushed.status, 201);
        const body = { deviceType, version, manifestDigest: pushed.digest };
        const created = await t.call('POST', `/api/v1/organizations/${x.org}/os-releases`, { key: x.apiKey, body });
        assert.equal(created.status, 201, created.text);
        ids.set(`${deviceType}/${version}`, created.data.id);
      };
      await record(t.a, orgA, TYPE, '1.0.0', pair.v1.bytes);
      await record(t.a, orgA, TYPE, '2.0.0', pair.v2.bytes);
      // Another device type's release of the organization: never a source or target for a generic-amd64 device.
      await record(t.a, orgA, 'raspberrypi4-64', '3.0.0', Buffer.concat([pair.v2.bytes, Buffer.from('rpi')]));
      // An image with nothing in common with 1.0.0.
      await record(t.a, orgA, TYPE, '4.0.0', randomBytes(4 << 20));
    });
    after(() => t.close());

    const ask = (x: Tenant, body: unknown) =>
      t.call('POST', `/device/v1/${x.uuid}/os-deltas`, { key: x.deviceKey, body });
    const ready = (x: Tenant, body: unknown) =>
      waitFor(
        'the OS delta',
        async () => {
          const answer = await ask(x, body);
          if (answer.status === 202) return undefined;
          assert.equal(answer.status, 200, answer.text);
          const parsed = osDeltaAnswerSchema.parse(answer.data);
          return parsed.status === 'ready' ? parsed.delta : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
    const v1 = () => hexOf(pair.v1.bytes);
    const v2 = () => hexOf(pair.v2.bytes);

    test('asked by version: pending, then ready; served with Range, it decodes to the target image', async () => {
      const first = await ask(t.a, { fromVersion: '1.0.0', toSha256: v2() });
      assert.equal(first.status, 202, first.text);
      assert.ok(first.data.retryAfterMs > 0);
      const delta: OsDeltaDescriptor = await ready(t.a, { fromVersion: '1.0.0', toSha256: v2() });
      assert.equal(delta.sourceSha256, v1());
      assert.equal(delta.sourceSize, pair.v1.bytes.length);
      assert.equal(delta.targetSha256, v2());
      assert.equal(delta.targetSize, pair.v2.bytes.length);
      assert.ok(delta.size < pair.v2.bytes.length / 4, `a delta of ${delta.size} bytes for ${pair.v2.bytes.length}`);
      const url = `${t.url}${delta.path}`;
      const auth = { authorization: `Bearer ${t.a.deviceKey}` };
      const head = Buffer.from(await (await fetch(url, { headers: { ...auth, range: 'bytes=0-999' } })).arrayBuffer());
      const rest = await fetch(url, { headers: { ...auth, range: 'bytes=1000-' } });
      assert.equal(rest.status, 206);
      const file = Buffer.concat([head, Buffer.from(await rest.arrayBuffer())]);
      assert.equal(`sha256:${hexOf(file)}`, delta.digest);
      const deltaFile = join(t.outerDir, 'os.delta');
      await writeFile(deltaFile, file);
      const out = join(t.outerDir, 'decoded.img');
      await run('xdelta3', ['-d', '-f', '-s', pair.v1.path, deltaFile, out]);
      assert.equal(hexOf(await readFile(out)), v2());
      // Asked by the source image instead: the same stored delta, at once.
      const byImage = await ask(t.a, { fromSha256: v1(), toSha256: v2() });
      assert.equal(byImage.status, 200);
      assert.equal(byImage.data.delta.digest, delta.digest);
    });

    test('another organization, another device type, an unknown version or image: OS_RELEASE_NOT_FOUND', async () => {
      const refusals = [
        [t.b, { fromVersion: '1.0.0', toSha256: v2() }],
        [t.b, { fromSha256: v1(), toSha256: v2() }],
        [t.a, { fromVersion: '3.0.0', toSha256: v2() }],
        [t.a, { fromVersion: '1.0.0', toSha256: hexOf(Buffer.concat([pair.v2.bytes, Buffer.from('rpi')])) }],
        [t.a, { fromVersion: '9.9.9', toSha256: v2() }],
        [t.a, { fromSha256: hexOf(Buffer.from('none')), toSha256: v2() }],
      ] as const;
      for (const [x, body] of refusals) {
        const answer = await ask(x, body);
        assert.equal(answer.status, 404, `${JSON.stringify(body)}: ${answer.text}`);
        assert.equal(answer.data.error.code, 'OS_RELEASE_NOT_FOUND');
      }
      const done = await ready(t.a, { fromVersion: '1.0.0', toSha256: v2() });
      const stolen = await t.call('GET', done.path.replace(t.a.uuid, t.b.uuid), { key: t.b.deviceKey });
      assert.equal(stolen.status, 404);
      assert.equal(stolen.data.error.code, 'OS_RELEASE_NOT_FOUND');
      const both = await ask(t.a, { fromVersion: '1.0.0', fromSha256: v1(), toSha256: v2() });
      assert.equal(both.status, 400);
    });

    test('a delta not smaller than half the image is recorded as unavailable', async () => {
      const target = (
        await t.call('GET', `/api/v1/os-releases?deviceType=${TYPE}`, { key: t.a.apiKey })
      ).data.items.find((r: { version: string }) => r.version === '4.0.0').sha256 as string;
      const answer = await waitFor(
        'the pair to be judged',
        async () => {
          const a = await ask(t.a, { fromVersion: '1.0.0', toSha256: target });
          return a.status === 202 ? undefined : a;
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
      assert.equal(answer.status, 409, answer.text);
      assert.equal(answer.data.error.code, 'DELTA_UNAVAILABLE');
    });

    test('an OS target given to a device queues the delta from the OS it reports before it asks', async () => {
      // The device reports running 2.0.0 (flashed with it); it is then told to run 1.0.0: a pair no test asked for.
      const reported = await t.call('PATCH', '/device/v3/state', {
        key: t.a.deviceKey,
        body: { [t.a.uuid]: { os_version: 'Flotilla OS 2.0.0' } },
      });
      assert.ok(reported.status < 300, reported.text);
      const store = new DeltaStore(join(t.dataDir, 'registry'));
      assert.equal(await store.readOsPair(v2(), v1()), undefined);
      const set = await t.call('PUT', `/api/v1/devices/${t.a.uuid}/os`, {
        key: t.a.apiKey,
        body: { version: '1.0.0' },
      });
      assert.equal(set.status, 200, set.text);
      // Computed with no ask: the device's first ask is answered ready at once.
      await waitFor('the OS delta computed ahead', () => store.readOsPair(v2(), v1()), {
        timeoutMs: 120_000,
        intervalMs: 250,
      });
      const first = await ask(t.a, { fromVersion: '2.0.0', toSha256: v1() });
      assert.equal(first.status, 200, first.text);
      assert.equal(first.data.status, 'ready');
      const cleared = await t.call('DELETE', `/api/v1/devices/${t.a.uuid}/os`, { key: t.a.apiKey });
      assert.ok(cleared.status < 300, cleared.text);
    });

    test('garbage collection removes the OS deltas of a deleted release', async () => {
      const delta = await ready(t.a, { fromVersion: '1.0.0', toSha256: v2() });
      const store = new DeltaStore(join(t.dataDir, 'registry'));
      const deltaFile = store.blobPath(delta.digest.slice(7));
      assert.ok((await stat(deltaFile)).size > 0);
      const storage = new RegistryStorage(join(t.dataDir, 'registry'));
      const later = { now: Date.now() + 2 * 24 * 3600 * 1000 };
      const db = t.server.app.flotilla.db;
      const kept = await collectFleetGarbage(db, storage, later);
      assert.equal(kept.deltaPairsRemoved, 0, 'both releases are there: the delta stays');
      assert.ok(await store.readOsPair(v1(), v2()));
      assert.ok((await stat(deltaFile)).size > 0, 'a delta file an OS pair names is not a stray one');
      const deleted = await t.call('DELETE', `/api/v1/os-releases/${ids.get(`${TYPE}/2.0.0`)}`, { key: t.a.apiKey });
      assert.equal(deleted.status, 204, deleted.text);
      const collected = await collectFleetGarbage(db, storage, later);
      assert.ok(collected.deltaPairsRemoved >= 1);
      assert.equal(await store.readOsPair(v1(), v2()), undefined);
      await assert.rejects(stat(deltaFile), { code: 'ENOENT' });
      const gone = await ask(t.a, { fromVersion: '1.0.0', toSha256: v2() });
      assert.equal(gone.data.error.code, 'OS_RELEASE_NOT_FOUND');
    });
  });
}
