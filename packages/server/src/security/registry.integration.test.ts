import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { generateKey } from '@flotilla/protocol';
import { tempDir, testDatabases } from '@flotilla/testkit';
import type { TestDatabase } from '@flotilla/testkit';
import { RegistryStorage } from '../registry/storage.js';
import {
  adminOrganization,
  createFleet,
  filesUnder,
  registerDevice,
  INDEX_TYPE,
  MANIFEST_TYPE,
  Tally,
  basicAuth,
  bearer,
  liveRegistry,
  newUser,
  pushBlob,
  pushImage,
  registryCall,
  registryToken,
  sha256,
} from './registry-support.js';

/**
 * Attacks on the built-in registry of a live server, on each database. Each test counts its attempts and how many
 * the server refused, prints the figures, and fails if any attempt got through.
 */

for (const db of testDatabases()) {
  describe(`[${db.label}] registry attacks`, () => {
    test("a fleet that takes a deleted fleet's slug sees none of its images, now or after collection", async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('reused fleet slug');
      try {
        const bob = await newUser(r, 'bob');
        assert.equal(
          (await r.api('POST', '/api/v1/organizations', { name: 'Bob', handle: 'bob-org' }, bob.apiKey)).status,
          201,
        );
        await createFleet(r, 'reused', bob.apiKey, 'bob-org');
        const bobAuth = basicAuth('bob', bob.apiKey);
        const secret = await pushImage(
          r,
          bobAuth,
          'reused/web',
          'secret',
          `bob's layer ${randomBytes(8).toString('hex')}`,
        );
        assert.equal((await r.api('DELETE', '/api/v1/fleets/reused', undefined, bob.apiKey)).status, 204);

        // Another organization takes the slug.
        const fleetId = await createFleet(r, 'reused');
        const admin = basicAuth('admin', r.adminKey);
        const token = await registryToken(r, 'admin', r.adminKey, 'repository:reused/web:pull,push');
        assert.equal(typeof token, 'string');
        const attempts: Array<[string, string, string]> = [
          ['manifest by tag', 'GET', '/v2/reused/web/manifests/secret'],
          ['manifest by digest', 'GET', `/v2/reused/web/manifests/${secret.manifest}`],
          ['manifest HEAD', 'HEAD', `/v2/reused/web/manifests/${secret.manifest}`],
          ['layer', 'GET', `/v2/reused/web/blobs/${secret.layer}`],
          ['config HEAD', 'HEAD', `/v2/reused/web/blobs/${secret.config}`],
          ['tags list', 'GET', '/v2/reused/web/tags/list'],
        ];
        for (const auth of [admin, bearer(token as string)]) {
          for (const [what, method, path] of attempts) {
            const answer = await registryCall(r, method, path, auth);
            tally.note(`${what}: ${answer.status}`, answer.status === 404);
          }
        }
        // Mounting the old layer into another repository of the new fleet.
        const mount = await registryCall(
          r,
          'POST',
          `/v2/reused/other/blobs/uploads/?mount=${secret.layer}&from=reused/web`,
          admin,
        );
        tally.note(`mount: ${mount.status}`, mount.status !== 201);

        // A release of the new fleet naming the old image by digest, and a device of the new fleet pulling it.
        const release = await r.api('POST', '/api/v1/fleets/reused/releases', {
          composition: { services: { web: { image: `${r.host}/reused/web@${secret.manifest}` } } },
          status: 'success',
        });
        assert.equal(release.status, 201, JSON.stringify(release.data));
        const device = await registerDevice(r, 'reused', fleetId);
        const deviceAuth = basicAuth(`d_${device.uuid}`, device.key);
        for (const path of [`/v2/reused/web/manifests/${secret.manifest}`, `/v2/reused/web/blobs/${secret.layer}`]) {
          const answer = await registryCall(r, 'GET', path, deviceAuth);
          tally.note(`device ${path}: ${answer.status}`, answer.status === 404);
        }

        // The collector removes the deleted fleet's repositories whole, at once (the release naming the old image
        // keeps nothing of it); the blobs only they linked go once past the grace period, like any other garbage.
        const { collectFleetGarbage } = await import('../registry/fleet-repositories.js');
        const storage = new RegistryStorage(join(r.dataDir, 'registry'));
        const repositoriesBefore = await readdir(storage.repositoriesDir);
        await collectFleetGarbage(r.db, storage);
        const repositoriesAfter = await readdir(storage.repositoriesDir);
        tally.note(
          `deleted fleet's repositories after collection: ${repositoriesBefore.length} -> ${repositoriesAfter.length}`,
          repositoriesAfter.length === repositoriesBefore.length - 1,
        );
        await collectFleetGarbage(r.db, storage, { now: Date.now() + 2 * 24 * 3600 * 1000 });
        for (const digest of [secret.manifest, secret.layer, secret.config]) {
          const gone = (await storage.blobSize(digest.slice(7))) === undefined;
          tally.note(`blob ${digest} still on disk after collection`, gone);
          const answer = await registryCall(r, 'GET', `/v2/reused/web/blobs/${digest}`, admin);
          tally.note(`after collection ${digest}: ${answer.status}`, answer.status === 404);
        }
        // The new owner's own pushes work as usual.
        await pushImage(r, admin, 'reused/web', 'mine', 'a layer of the new fleet');
        assert.equal((await registryCall(r, 'GET', '/v2/reused/web/manifests/mine', admin)).status, 200);
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('a registry token stops working as soon as its credential is revoked', async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('revoked credentials');
      try {
        const fleetId = await createFleet(r, 'rev');
        const org = await adminOrganization(r);
        const admin = basicAuth('admin', r.adminKey);
        await pushImage(r, admin, 'rev/web', 'v1', 'revocation layer');
        const carol = await newUser(r, 'carol');
        const carolOrgId = (await r.api('GET', '/api/v1/organizations')).data.items[0].id as number;
        await r.db
          .insertInto('memberships')
          .values({ organization_id: carolOrgId, user_id: carol.id, role: 'member' })
          .execute();
        const extraKey = await r.api('POST', '/api/v1/api-keys', { name: 'to-delete' });
        const scope = 'repository:rev/web:pull,push';
        const deviceA = await registerDevice(r, 'rev', fleetId);
        const deviceB = await registerDevice(r, 'rev', fleetId);

        const tokens = {
          deletedKey: await registryToken(r, 'admin', extraKey.data.key, scope),
          endedSession: await registryToken(r, 'carol', carol.session, scope),
          leftOrgKey: await registryToken(r, 'carol', carol.apiKey, scope),
          leftOrgPassword: await registryToken(r, 'carol', carol.password, scope),
          changedDeviceKey: await registryToken(r, `d_${deviceA.uuid}`, deviceA.key, 'repository:rev/web:pull'),
          deletedDevice: await registryToken(r, `d_${deviceB.uuid}`, deviceB.key, 'repository:rev/web:pull'),
        };
        for (const [name, token] of Object.entries(tokens)) {
          assert.equal(typeof token, 'string', name);
          const before = await registryCall(r, 'GET', '/v2/rev/web/manifests/v1', bearer(token as string));
          assert.equal(before.status, 200, `${name} works before revocation`);
        }

        assert.equal((await r.api('DELETE', `/api/v1/api-keys/${extraKey.data.id}`)).status, 204);
        await r.db.deleteFrom('sessions').where('user_id', '=', carol.id).execute(); // signed out / expired
        assert.equal((await r.api('DELETE', `/api/v1/organizations/${org}/members/${carol.id}`)).status, 204);
        const exchanged = await r.api(
          'POST',
          `/api-key/device/${deviceA.id}/device-key`,
          { apiKey: generateKey() },
          deviceA.provisioningKey,
        );
        assert.equal(exchanged.status, 200, JSON.stringify(exchanged.data));
        assert.equal((await r.api('DELETE', `/api/v1/devices/${deviceB.uuid}`)).status, 204);

        for (const [name, token] of Object.entries(tokens)) {
          const auth = bearer(token as string);
          const pull = await registryCall(r, 'GET', '/v2/rev/web/manifests/v1', auth);
          tally.note(`${name} pull: ${pull.status}`, pull.status === 401 || pull.status === 403);
          const layer = await registryCall(r, 'GET', `/v2/rev/web/blobs/${sha256('revocation layer')}`, auth);
          tally.note(`${name} blob: ${layer.status}`, layer.status === 401 || layer.status === 403);
          const push = await registryCall(r, 'POST', '/v2/rev/web/blobs/uploads/', auth);
          tally.note(`${name} push: ${push.status}`, push.status === 401 || push.status === 403);
          // Leaving an organization does not end the credential itself: it still signs in, to nothing.
          if (name.startsWith('leftOrg')) continue;
          const base = await registryCall(r, 'GET', '/v2/', auth);
          tally.note(`${name} /v2/: ${base.status}`, base.status === 401);
        }
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('an observer pulls and never pushes; lowering a member to observer ends their push at once', async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('observer registry access');
      try {
        await createFleet(r, 'obs');
        const org = await adminOrganization(r);
        await pushImage(r, basicAuth('admin', r.adminKey), 'obs/web', 'v1', 'observer layer');
        const dana = await newUser(r, 'dana');
        const orgId = (await r.api('GET', '/api/v1/organizations')).data.items[0].id as number;
        await r.db
          .insertInto('memberships')
          .values({ organization_id: orgId, user_id: dana.id, role: 'member' })
          .execute();
        const scope = 'repository:obs/web:pull,push';
        const token = await registryToken(r, 'dana', dana.apiKey, scope);
        assert.equal(typeof token, 'string');
        const auth = bearer(token as string);
        const upload = await registryCall(r, 'POST', '/v2/obs/web/blobs/uploads/', auth);
        assert.equal(upload.status, 202, 'a member pushes');

        const lowered = await r.api('PATCH', `/api/v1/organizations/${org}/members/${dana.id}`, { role: 'observer' });
        assert.equal(lowered.status, 200, JSON.stringify(lowered.data));
        // The token minted while she was a member, and new credentials alike: pull yes, push no.
        for (const [name, credentials] of [
          ['token', auth],
          ['api key', basicAuth('dana', dana.apiKey)],
          ['password', basicAuth('dana', dana.password)],
        ] as const) {
          const pull = await registryCall(r, 'GET', '/v2/obs/web/manifests/v1', credentials);
          assert.equal(pull.status, 200, `observer ${name} pulls`);
          const push = await registryCall(r, 'POST', '/v2/obs/web/blobs/uploads/', credentials);
          tally.note(`observer ${name} push: ${push.status}`, push.status === 401 || push.status === 403);
        }
        const granted = await registryToken(r, 'dana', dana.apiKey, scope);
        if (typeof granted === 'string') {
          const push = await registryCall(r, 'POST', '/v2/obs/web/blobs/uploads/', bearer(granted));
          tally.note(`observer's new token push: ${push.status}`, push.status === 401 || push.status === 403);
        } else tally.note(`observer's token request: ${granted}`, true);
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('a token for another service (audience) is refused', async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('token audience');
      try {
        await createFleet(r, 'aud');
        await pushImage(r, basicAuth('admin', r.adminKey), 'aud/web', 'v1', 'audience layer');
        const scope = 'repository:aud/web:pull,push';
        for (const service of ['other-registry.example', 'evil.example:5000', `${r.host}.evil.example`]) {
          const token = await registryToken(r, 'admin', r.adminKey, scope, service);
          if (typeof token === 'number') tally.note(`issued for ${service}`, true);
          else {
            const use = await registryCall(r, 'GET', '/v2/aud/web/manifests/v1', bearer(token));
            tally.note(`token for ${service}: ${use.status}`, use.status === 401);
          }
        }
        // A token signed with the right secret (as another service sharing it would) but for another audience.
        const good = await registryToken(r, 'admin', r.adminKey, scope);
        assert.equal(typeof good, 'string');
        const secret = await readFile(join(r.dataDir, 'registry', 'token-secret'));
        const [head, body] = (good as string).split('.') as [string, string];
        const claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as Record<string, unknown>;
        for (const aud of ['other-registry.example', '', undefined]) {
          const forged = Buffer.from(JSON.stringify({ ...claims, aud })).toString('base64url');
          const mac = createHmac('sha256', secret).update(`${head}.${forged}`).digest('base64url');
          const use = await registryCall(r, 'GET', '/v2/aud/web/manifests/v1', bearer(`${head}.${forged}.${mac}`));
          tally.note(`signed token for audience ${String(aud)}: ${use.status}`, use.status === 401);
        }
        const control = await registryCall(r, 'GET', '/v2/aud/web/manifests/v1', bearer(good as string));
        assert.equal(control.status, 200, 'the token for this registry works');
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('another principal cannot touch an upload whose ID it learned', async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('foreign upload IDs');
      try {
        await createFleet(r, 'own');
        const bob = await newUser(r, 'mallory');
        assert.equal(
          (await r.api('POST', '/api/v1/organizations', { name: 'M', handle: 'm-org' }, bob.apiKey)).status,
          201,
        );
        await createFleet(r, 'theirs', bob.apiKey, 'm-org');
        const admin = basicAuth('admin', r.adminKey);
        const mallory = basicAuth('mallory', bob.apiKey);
        const started = await registryCall(r, 'POST', '/v2/own/web/blobs/uploads/', admin);
        assert.equal(started.status, 202);
        const id = started.headers.get('docker-upload-uuid') ?? '';
        assert.match(id, /^[0-9a-f-]{36}$/);
        const first = Buffer.from('first half of the victim layer, ');
        assert.equal(
          (
            await registryCall(r, 'PATCH', `/v2/own/web/blobs/uploads/${id}`, admin, first, {
              'content-range': `0-${first.length - 1}`,
            })
          ).status,
          202,
        );
        const junk = Buffer.from('attacker bytes');
        const attacks: Array<[string, string, string, string, Buffer | undefined]> = [];
        for (const [who, auth, repository] of [
          ['mallory, her repository', mallory, 'theirs/web'],
          ['mallory, the victim repository', mallory, 'own/web'],
          ['victim, another repository', admin, 'own/other'],
        ] as const) {
          attacks.push([`${who} GET`, auth, 'GET', `/v2/${repository}/blobs/uploads/${id}`, undefined]);
          attacks.push([`${who} PATCH`, auth, 'PATCH', `/v2/${repository}/blobs/uploads/${id}`, junk]);
          attacks.push([
            `${who} PUT`,
            auth,
            'PUT',
            `/v2/${repository}/blobs/uploads/${id}?digest=${sha256(junk)}`,
            junk,
          ]);
          attacks.push([`${who} DELETE`, auth, 'DELETE', `/v2/${repository}/blobs/uploads/${id}`, undefined]);
        }
        for (const [what, auth, method, path, body] of attacks) {
          const answer = await registryCall(r, method, path, auth, body);
          // Unknown upload (404 BLOB_UPLOAD_UNKNOWN) in a repository the caller may push to; refused outright elsewhere.
          const refused =
            (answer.status === 404 && answer.code === 'BLOB_UPLOAD_UNKNOWN') ||
            answer.status === 401 ||
            answer.status === 403;
          tally.note(`${what}: ${answer.status} ${answer.code}`, refused);
        }
        tally.finish();
        // The owner finishes the upload untouched.
        const second = Buffer.from('second half.');
        const whole = Buffer.concat([first, second]);
        const done = await registryCall(
          r,
          'PUT',
          `/v2/own/web/blobs/uploads/${id}?digest=${sha256(whole)}`,
          admin,
          second,
        );
        assert.equal(done.status, 201, done.text);
      } finally {
        await r.close();
      }
    });

    test('malformed manifests answer 400 MANIFEST_INVALID, never 500', async () => {
      const r = await liveRegistry(db);
      const tally = new Tally('malformed manifests');
      try {
        await createFleet(r, 'fuzz');
        const admin = basicAuth('admin', r.adminKey);
        const image = await pushImage(r, admin, 'fuzz/web', 'ok', 'fuzz layer');
        const d = (digest: string) => ({ mediaType: MANIFEST_TYPE, digest, size: 10 });
        const indexes: unknown[] = [
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [null] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [d(image.manifest), null] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [1] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: ['sha256:abc'] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [{}] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [{ digest: 5 }] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [{ digest: [image.manifest] }] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [{ ...d(image.manifest), size: 'ten' }] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [{ ...d(image.manifest), size: -1 }] },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: null },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: {} },
          { schemaVersion: 2, mediaType: INDEX_TYPE, manifests: 'x' },
          { schemaVersion: 2, mediaType: INDEX_TYPE },
          null,
          7,
          'a string',
          [],
          { mediaType: 5 },
        ];
        const images: unknown[] = [
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: null, layers: [] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: 5, layers: [] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: [null] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: [7] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: [{}] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: [{ digest: null }] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: 'x' },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: image.config } },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: {}, layers: [] },
          { schemaVersion: 2, mediaType: MANIFEST_TYPE, config: { digest: 'md5:abc' }, layers: [] },
          { schemaVersion: 'two', mediaType: MANIFEST_TYPE, config: { digest: image.config }, layers: [] },
        ];
        const cases: Array<[unknown, string]> = [
          ...indexes.map((doc): [unknown, string] => [doc, INDEX_TYPE]),
          ...images.map((doc): [unknown, string] => [doc, MANIFEST_TYPE]),
          // Without a Content-Type the document's own mediaType decides.
          ...indexes.slice(0, 9).map((doc): [unknown, string] => [doc, '']),
        ];
        for (const [doc, type] of cases) {
          const answer = await registryCall(
            r,
            'PUT',
            '/v2/fuzz/web/manifests/bad',
            admin,
            JSON.stringify(doc),
            type ? { 'content-type': type } : {},
          );
          tally.note(
            `${JSON.stringify(doc)} as ${type || '(none)'}: ${answer.status} ${answer.code}`,
            answer.status === 400 && answer.code === 'MANIFEST_INVALID',
          );
        }
        // A well-formed index of the pushed image is still accepted.
        const ok = await registryCall(
          r,
          'PUT',
          '/v2/fuzz/web/manifests/index',
          admin,
          JSON.stringify({ schemaVersion: 2, mediaType: INDEX_TYPE, manifests: [d(image.manifest)] }),
          { 'content-type': INDEX_TYPE },
        );
        assert.equal(ok.status, 201, ok.text);
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('uploads over the size limit or the organization quota answer 413 and leave nothing behind', async () => {
      // Spread so the options are plain data (the limits are in MiB).
      const limits = { registryMaxUploadMb: 1, registryQuotaMb: 3 };
      const r = await liveRegistry(db, limits);
      const tally = new Tally('size limit and quota');
      const MIB = 1024 * 1024;
      const uploadsDir = join(r.dataDir, 'registry', 'uploads');
      try {
        await createFleet(r, 'big');
        await createFleet(r, 'big2');
        const admin = basicAuth('admin', r.adminKey);
        const over = randomBytes(MIB + MIB / 2);
        // One request over the limit.
        const mono = await pushBlob(r, admin, 'big/web', over);
        tally.note(
          `monolithic 1.5 MiB: ${mono.status} ${mono.code}`,
          mono.status === 413 && mono.code === 'SIZE_INVALID',
        );
        // Chunks that pass the limit together, without Content-Range.
        const started = await registryCall(r, 'POST', '/v2/big/web/blobs/uploads/', admin);
        const location = started.headers.get('location') ?? '';
        const chunk = randomBytes(0.6 * MIB);
        const c1 = await registryCall(r, 'PATCH', location, admin, chunk);
        assert.equal(c1.status, 202);
        const c2 = await registryCall(r, 'PATCH', location, admin, chunk);
        tally.note(`second chunk past 1 MiB: ${c2.status} ${c2.code}`, c2.status === 413 && c2.code === 'SIZE_INVALID');
        const after = await registryCall(r, 'GET', location, admin);
        tally.note(`upload still there after 413: ${after.status}`, after.status === 404);
        // A body streamed without a length (chunked transfer encoding) is cut off too.
        const streamed = await fetch(`${r.url}/v2/big/web/blobs/uploads/?digest=${sha256(over)}`, {
          method: 'POST',
          headers: { authorization: admin },
          body: new ReadableStream({
            start(controller) {
              controller.enqueue(over);
              controller.close();
            },
          }),
          duplex: 'half',
        } as RequestInit).catch(() => undefined);
        tally.note(`streamed 1.5 MiB: ${streamed?.status}`, streamed === undefined || streamed.status === 413);
        tally.note(
          `partial files left: ${(await filesUnder(uploadsDir)).length}`,
          (await filesUnder(uploadsDir)).length === 0,
        );

        // Quota: 3 MiB per organization, over all its fleets.
        const blobs = [0, 1, 2, 3].map(() => randomBytes(0.9 * MIB));
        for (const [i, blob] of blobs.slice(0, 3).entries()) {
          const pushed = await pushBlob(r, admin, i === 2 ? 'big2/web' : 'big/web', blob);
          assert.equal(pushed.status, 201, `blob ${i} within the quota`);
        }
        for (const repository of ['big/web', 'big2/other']) {
          const pushed = await pushBlob(r, admin, repository, blobs[3]!);
          tally.note(
            `4th 0.9 MiB blob in ${repository}: ${pushed.status} ${pushed.code}`,
            pushed.status === 413 && pushed.code === 'DENIED',
          );
        }
        // Mounting a blob the organization holds already adds nothing, so it is allowed.
        const mount = await registryCall(
          r,
          'POST',
          `/v2/big2/web/blobs/uploads/?mount=${sha256(blobs[0]!)}&from=big/web`,
          admin,
        );
        assert.equal(mount.status, 201, 'a mount within the organization costs nothing');
        tally.note(
          `partial files left after quota: ${(await filesUnder(uploadsDir)).length}`,
          (await filesUnder(uploadsDir)).length === 0,
        );

        // Another organization has its own quota.
        const other = await newUser(r, 'olga');
        assert.equal(
          (await r.api('POST', '/api/v1/organizations', { name: 'O', handle: 'o-org' }, other.apiKey)).status,
          201,
        );
        await createFleet(r, 'olgas', other.apiKey, 'o-org');
        assert.equal((await pushBlob(r, basicAuth('olga', other.apiKey), 'olgas/web', blobs[3]!)).status, 201);
        tally.finish();
      } finally {
        await r.close();
      }
    });

    test('the log of a real push holds no upload ID', async () => {
      await pushAndReadLog(db);
    });
  });
}

/** Runs the server binary at info level, pushes a blob in chunks, and checks every line it logged. */
async function pushAndReadLog(testDb: TestDatabase): Promise<void> {
  const created = await testDb.create();
  const dir = await tempDir('flotilla-security-log-');
  const main = new URL('../main.js', import.meta.url).pathname;
  const args = [main, '--data', join(dir.path, 'data'), '--port', '0', '--log-level', 'info'];
  if (created.url) args.push('--database', created.url);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const tally = new Tally('upload IDs in the log');
  try {
    const deadline = Date.now() + 30_000;
    while (!/listening on (\S+)/.test(output)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const url = /listening on (\S+)/.exec(output)?.[1] ?? '';
    const adminKey = (JSON.parse(/FLOTILLA_ADMIN (.*)/.exec(output)?.[1] ?? '{}') as { apiKey: string }).apiKey;
    const fleet = await fetch(`${url}/api/v1/fleets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'logged', slug: 'logged' }),
    });
    assert.equal(fleet.status, 201);
    const auth = basicAuth('admin', adminKey);
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const start = await fetch(`${url}/v2/logged/web/blobs/uploads/`, {
        method: 'POST',
        headers: { authorization: auth },
      });
      const location = start.headers.get('location') ?? '';
      ids.push(start.headers.get('docker-upload-uuid') ?? '');
      const body = Buffer.from(`log test layer ${i} ${randomBytes(4).toString('hex')}`);
      assert.equal(
        (await fetch(`${url}${location}`, { method: 'PATCH', headers: { authorization: auth }, body })).status,
        202,
      );
      assert.equal((await fetch(`${url}${location}`, { method: 'GET', headers: { authorization: auth } })).status, 204);
      if (i === 2) {
        assert.equal(
          (await fetch(`${url}${location}`, { method: 'DELETE', headers: { authorization: auth } })).status,
          204,
        );
        continue;
      }
      const put = await fetch(`${url}${location}?digest=${sha256(body)}`, {
        method: 'PUT',
        headers: { authorization: auth },
      });
      assert.equal(put.status, 201);
    }
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
    const lines = output.split('\n').filter((line) => line.includes('"/v2/logged/web/blobs/uploads/'));
    assert.ok(lines.length >= 10, `the upload requests were logged (${lines.length} lines)`);
    for (const id of ids) {
      assert.match(id, /^[0-9a-f-]{36}$/);
      for (const form of [id, id.replaceAll('-', '')]) tally.note(`${form} in the log`, !output.includes(form));
    }
    tally.finish();
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    await created.drop();
    await dir.remove();
  }
}
