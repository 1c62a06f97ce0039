import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { AttackTally, basicAuth, bounded } from '../testing/attacks.js';
import { postDeviceLogs } from '../testing/live-server.js';
import { twoTenants, type HttpAnswer, type Tenant, type TwoTenants } from '../testing/tenants.js';

/** The status of a WebSocket upgrade to `path` with `key`: 101 when it opened. */
function upgradeStatus(url: string, path: string, key: string): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}${path}`, {
      headers: { authorization: `Bearer ${key}` },
    });
    socket.on('open', () => {
      socket.close();
      resolve(101);
    });
    socket.on('unexpected-response', (_request, response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    socket.on('error', () => resolve(0));
  });
}

/** The actions a registry token grants, all repositories together; undefined when no token was issued. */
function grantedActions(res: HttpAnswer): string[] | undefined {
  if (res.status !== 200 || typeof res.data?.token !== 'string') return undefined;
  const claims = JSON.parse(Buffer.from(res.data.token.split('.')[1] ?? '', 'base64url').toString()) as {
    access: Array<{ actions: string[] }>;
  };
  return claims.access.flatMap((g) => g.actions);
}

const isClientError = (status: number) => status >= 400 && status < 500;

/** Device `self`'s key and fleet `self`'s provisioning key against everything of `other`'s device and fleet. */
function attacks(t: TwoTenants, self: Tenant, other: Tenant, tally: AttackTally): Array<() => Promise<void>> {
  const { url } = t;
  const key = self.deviceKey;
  const check = (what: string, run: () => Promise<boolean>) => async () => tally.record(await run(), what);
  const status = async (method: string, path: string, o: Parameters<TwoTenants['call']>[2], expected: number[]) =>
    expected.includes((await t.call(method, path, o)).status);
  const filter = `$filter=${encodeURIComponent(`uuid eq '${other.uuid}'`)}`;
  const repo = `${other.slug}/main`;
  const token = (auth: string, scope: string) =>
    t.call('GET', `/auth/v1/token?service=${new URL(url).host}&scope=${encodeURIComponent(scope)}`, {
      headers: { authorization: auth },
    });
  const ownBasic = basicAuth(`d_${self.uuid}`, key);
  const img = other.image;
  const registryReads = [
    `/v2/${repo}/manifests/${img.tag}`,
    `/v2/${repo}/manifests/${img.manifestDigest}`,
    `/v2/${repo}/blobs/${img.layerDigest}`,
    `/v2/${repo}/blobs/${img.configDigest}`,
    `/v2/${repo}/tags/list`,
  ];
  return [
    // Device API with the wrong device's key.
    check('target state', () => status('GET', `/device/v3/${other.uuid}/state`, { key }, [401])),
    check('target state, key in ?apikey=', () =>
      status('GET', `/device/v3/${other.uuid}/state?apikey=${encodeURIComponent(key)}`, {}, [401]),
    ),
    check('report state', () =>
      status('PATCH', '/device/v3/state', { key, body: { [other.uuid]: { status: 'taken over' } } }, [401]),
    ),
    check('report state for self and other in one body', () =>
      status(
        'PATCH',
        '/device/v3/state',
        { key, body: { [self.uuid]: { status: 'Idle' }, [other.uuid]: { status: 'taken over' } } },
        [401],
      ),
    ),
    check('report tags', () =>
      status('PATCH', '/device/v3/tags', { key, body: { [other.uuid]: { [other.tagKey]: 'taken over' } } }, [401]),
    ),
    check('log stream', async () =>
      isClientError(await postDeviceLogs(url, other.uuid, key, [{ message: 'forged line', timestamp: Date.now() }])),
    ),
    check('connect WebSocket', async () => (await upgradeStatus(url, `/device/v1/${other.uuid}/connect`, key)) === 401),
    check('find another device by uuid', async () => {
      const res = await t.call('GET', `/v7/device?$select=id&${filter}`, { key });
      return res.status === 200 && res.data.d.length === 0;
    }),
    check('device key as a user credential', () => status('GET', `/api/v1/devices/${other.uuid}`, { key }, [401])),
    // Registry: tokens for the other fleet's repositories, and pulls of its images.
    ...['pull', 'pull,push', '*'].map((actions) =>
      check(`registry token for ${repo}:${actions}`, async () => {
        const res = await token(ownBasic, `repository:${repo}:${actions}`);
        const granted = grantedActions(res);
        return granted === undefined ? isClientError(res.status) : granted.length === 0;
      }),
    ),
    check("registry token in the other device's name", async () =>
      isClientError((await token(basicAuth(`d_${other.uuid}`, key), `repository:${repo}:pull`)).status),
    ),
    check("registry token with the other tenant's username", async () =>
      isClientError((await token(basicAuth(other.username, key), `repository:${repo}:pull`)).status),
    ),
    ...registryReads.map((path) =>
      check(`registry pull ${path} (basic)`, () =>
        status('GET', path, { headers: { authorization: ownBasic } }, [403]),
      ),
    ),
    ...registryReads.map((path) =>
      check(`registry pull ${path} (token)`, async () => {
        const minted = await token(ownBasic, `repository:${repo}:pull`);
        return status('GET', path, { key: minted.data?.token ?? 'none' }, [401, 403]);
      }),
    ),
    // Blobs are stored once by digest: the other fleet's blobs and manifest must not be readable through one's own.
    ...[img.layerDigest, img.configDigest].map((digest) =>
      check(`other fleet's blob through own repository`, () =>
        status('GET', `/v2/${self.slug}/main/blobs/${digest}`, { headers: { authorization: ownBasic } }, [404]),
      ),
    ),
    check(`other fleet's manifest through own repository`, () =>
      status(
        'GET',
        `/v2/${self.slug}/main/manifests/${img.manifestDigest}`,
        { headers: { authorization: ownBasic } },
        [404],
      ),
    ),
    // Provisioning key of self's fleet.
    check('register into the other fleet', () =>
      status(
        'POST',
        '/device/register',
        {
          key: self.provisioningKey,
          body: { application: other.fleetId, uuid: generateDeviceUuid(), device_type: 'x', api_key: generateKey() },
        },
        [401, 403, 404],
      ),
    ),
    check("register the other device's uuid into own fleet", () =>
      status(
        'POST',
        '/device/register',
        {
          key: self.provisioningKey,
          body: { application: self.fleetId, uuid: other.uuid, device_type: 'x', api_key: generateKey() },
        },
        [409],
      ),
    ),
    check("register the other device's uuid into the other fleet", () =>
      status(
        'POST',
        '/device/register',
        {
          key: self.provisioningKey,
          body: { application: other.fleetId, uuid: other.uuid, device_type: 'x', api_key: generateKey() },
        },
        [401, 403, 404, 409],
      ),
    ),
    check("key exchange for the other device's id", () =>
      status(
        'POST',
        `/api-key/device/${other.deviceId}/device-key`,
        { key: self.provisioningKey, body: { apiKey: generateKey() } },
        [401, 403, 404],
      ),
    ),
    check('find the other device with a provisioning key', async () => {
      const res = await t.call('GET', `/v7/device?$select=id&${filter}`, { key: self.provisioningKey });
      return res.status === 200 && res.data.d.length === 0;
    }),
    check('provisioning key as a device key', () =>
      status('GET', `/device/v3/${other.uuid}/state`, { key: self.provisioningKey }, [401]),
    ),
  ];
}

for (const testDb of testDatabases()) {
  describe(`security: device and provisioning keys across tenants (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test("a device's key reaches nothing of another tenant's device; a provisioning key only its fleet", async () => {
      const snapshot = async (x: Tenant) => {
        const device = await t.call('GET', `/api/v1/devices/${x.uuid}`, { key: x.token });
        const tags = await t.call('GET', `/api/v1/devices/${x.uuid}/tags`, { key: x.token });
        const logs = await t.call('GET', `/api/v1/devices/${x.uuid}/logs`, { key: x.token });
        return { fleet: device.data.fleet, status: device.data.status, tags: tags.data, logs: logs.data };
      };
      const before = [await snapshot(t.a), await snapshot(t.b)];
      const tally = new AttackTally('device-keys');
      await bounded(6, [...attacks(t, t.a, t.b, tally), ...attacks(t, t.b, t.a, tally)]);
      tally.finish();

      // Each device's own key still works, for its device only, and nothing of either device changed.
      for (const x of [t.a, t.b]) {
        assert.equal((await t.call('GET', `/device/v3/${x.uuid}/state`, { key: x.deviceKey })).status, 200);
        assert.equal(
          (
            await t.call('GET', `/v2/${x.slug}/main/manifests/latest`, {
              headers: { authorization: basicAuth(`d_${x.uuid}`, x.deviceKey) },
            })
          ).status,
          200,
        );
      }
      const after = [await snapshot(t.a), await snapshot(t.b)];
      // Self's own status report (sent with the other's in one body) may have been applied; the other's not.
      assert.deepEqual(
        after.map((s) => ({ ...s, status: null })),
        before.map((s) => ({ ...s, status: null })),
      );
      for (const s of after) assert.notEqual(s.status, 'taken over');
    });
  });
}
