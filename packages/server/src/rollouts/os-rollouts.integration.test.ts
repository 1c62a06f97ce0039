import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { osRepository, type Device, type OsRollout } from '@flotilla/protocol';
import { tempDir, testDatabases, waitFor, type TestDatabase } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { basicAuth } from '../testing/attacks.js';
import { apiCall } from '../testing/live-server.js';
import { pushOsImage } from '../testing/os-release-image.js';
import { SimulatedDevice } from '../testing/simulated-device.js';

/**
 * Staged OS updates on a real server, with devices speaking the device API over HTTP (testing/simulated-device.ts
 * reports `os_update` and `os_version` as the agent's update machine does): batches are told the OS in turn, each
 * once the previous one committed it and soaked; roll-backs past the threshold pause the rollout, resume excuses
 * them, abort stops telling devices, a fleet-wide set or clear ends it, and a release it holds cannot be deleted.
 */

const TYPE = 'generic-amd64';

interface Setup {
  server: RunningServer;
  databaseUrl: string | undefined;
  key: string;
  orgId: number;
  close: () => Promise<void>;
}

async function serverOn(testDb: TestDatabase): Promise<Setup> {
  const dir = await tempDir('flotilla-os-rollouts-');
  const created = await testDb.create();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir.path, 'data'),
    rolloutIntervalMs: 100,
    ...(created.url ? { databaseUrl: created.url } : {}),
  });
  const key = server.admin?.apiKey ?? '';
  const orgs = await apiCall(server.url, 'GET', '/api/v1/organizations', key);
  return {
    server,
    databaseUrl: created.url,
    key,
    orgId: orgs.data.items[0].id,
    close: async () => {
      await server.close();
      await created.drop();
      await dir.remove();
    },
  };
}

let fleetNumber = 0;
const started: SimulatedDevice[] = [];

for (const testDb of testDatabases()) {
  describe(`staged OS updates (${testDb.label})`, () => {
    let setup: Setup;
    before(async () => {
      setup = await serverOn(testDb);
    });
    afterEach(async () => {
      for (const d of started.splice(0)) await d.stop();
    });
    after(async () => setup.close());

    const api = (method: string, path: string, body?: unknown) =>
      apiCall(setup.server.url, method, path, setup.key, body);

    /** A fleet with `count` registered devices running OS 1.0.0 (not stepping until started). */
    async function fleetOf(count: number) {
      const slug = `osroll${++fleetNumber}x${Date.now() % 100_000}`;
      const fleet = await api('POST', '/api/v1/fleets', { name: slug, slug });
      assert.equal(fleet.status, 201, JSON.stringify(fleet.data));
      const pk = await api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
      const devices: SimulatedDevice[] = [];
      for (let i = 0; i < count; i++)
        devices.push(await SimulatedDevice.register(setup.server.url, fleet.data.id, pk.data.key));
      started.push(...devices);
      return { slug, devices };
    }

    /** Pushes and records OS `version` (a fresh slot image) in the default organization; returns its id. */
    async function osRelease(version: string): Promise<number> {
      const auth = basicAuth(setup.server.admin?.username ?? '', setup.key);
      const config = { deviceType: TYPE, version };
      const pushed = await pushOsImage(
        setup.server.url,
        auth,
        osRepository(setup.orgId, TYPE),
        randomBytes(5_000),
        config,
      );
      assert.equal(pushed.status, 201);
      const made = await api('POST', '/api/v1/organizations/default/os-releases', {
        ...config,
        manifestDigest: pushed.digest,
      });
      assert.equal(made.status, 201, JSON.stringify(made.data));
      return made.data.id;
    }

    const status = async (slug: string): Promise<OsRollout> => {
      const answer = await api('GET', `/api/v1/fleets/${slug}/os-rollout`);
      assert.equal(answer.status, 200, JSON.stringify(answer.data));
      return answer.data as OsRollout;
    };
    const targetOs = async (d: SimulatedDevice) =>
      ((await api('GET', `/api/v1/devices/${d.uuid}`)).data as Device).targetOs;
    const batchOf = (r: OsRollout, d: SimulatedDevice) => r.devices.find((x) => x.uuid === d.uuid)?.batch;

    test('an OS version reaches every batch in turn, each once the previous one committed it and soaked', async () => {
      await osRelease('2.0.0');
      const { slug, devices } = await fleetOf(4);
      const created = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, {
        version: '2.0.0',
        batches: [25, 50, 100],
        soakSeconds: 1,
      });
      assert.equal(created.status, 201, JSON.stringify(created.data));
      const rollout = created.data as OsRollout;
      assert.deepEqual(rollout.os.version, '2.0.0');
      assert.deepEqual(
        rollout.batches.map((b) => [b.label, b.devices, b.opened]),
        [
          ['25%', 1, true],
          ['50%', 1, false],
          ['100%', 2, false],
        ],
      );
      // Only batch 1 is told; nothing has stepped yet, so no other device can have been told.
      for (const d of devices) assert.equal(await targetOs(d), batchOf(rollout, d) === 0 ? '2.0.0' : null, d.uuid);
      for (const d of devices) d.start();
      const done = await waitFor(
        'the OS rollout to complete',
        async () => {
          const r = await status(slug);
          return r.status === 'completed' ? r : undefined;
        },
        { timeoutMs: 30_000 },
      );
      assert.deepEqual(
        done.events.map((e) => [e.kind, e.batch]),
        [
          ['created', null],
          ['batch-opened', 0],
          ['batch-opened', 1],
          ['batch-opened', 2],
          ['completed', 2],
        ],
      );
      assert.ok(done.devices.every((d) => d.state === 'succeeded'));
      for (const d of devices) {
        assert.equal(d.osVersion, '2.0.0');
        assert.deepEqual(d.osGiven, ['2.0.0'], 'each device told once');
      }
      // Each batch opened only after the soak of the one before it.
      const opened = done.batches.map((b) => Date.parse(b.openedAt ?? ''));
      assert.ok(opened[1]! - opened[0]! >= 1000 && opened[2]! - opened[1]! >= 1000, JSON.stringify(done.batches));
      // Completed, the version is the fleet's own: a device registered now starts with it.
      const pk = await api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
      const fleetId = (await api('GET', `/api/v1/fleets/${slug}`)).data.id as number;
      const late = await SimulatedDevice.register(setup.server.url, fleetId, pk.data.key);
      assert.equal(await targetOs(late), '2.0.0');
    });

    test('roll-backs past the threshold pause it; resume excuses them and goes on; a paused rollout holds its release', async () => {
      const id = await osRelease('3.0.0');
      const { slug, devices } = await fleetOf(4);
      for (const d of devices) {
        d.decideOs = () => 'roll-back';
        d.start();
      }
      const created = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, {
        version: '3.0.0',
        batches: [25, 100],
        soakSeconds: 0,
      });
      assert.equal(created.status, 201, JSON.stringify(created.data));
      const paused = await waitFor('the rollout to pause', async () => {
        const r = await status(slug);
        return r.status === 'paused' ? r : undefined;
      });
      assert.equal(paused.reason, 'batch 1: 1 of 1 device(s) failed, more than 10%');
      assert.deepEqual(
        paused.devices.filter((d) => d.batch === 0).map((d) => [d.state, d.reason]),
        [['failed', 'OS 3.0.0 rolled-back: the engine did not answer in the trial boot (TRIAL_UNHEALTHY)']],
      );
      const second = devices.filter((d) => batchOf(paused, d) === 1);
      for (const d of second) assert.equal(await targetOs(d), null, 'batch 2 was never told');
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal((await status(slug)).status, 'paused', 'it stays paused');

      const inUse = await api('DELETE', `/api/v1/os-releases/${id}`);
      assert.equal(inUse.status, 409);
      assert.equal(inUse.data.error.code, 'OS_RELEASE_IN_USE');

      for (const d of devices) d.decideOs = () => 'commit';
      const resumed = await api('POST', `/api/v1/fleets/${slug}/os-rollout/resume`);
      assert.equal(resumed.status, 200, JSON.stringify(resumed.data));
      const done = await waitFor('the rollout to complete', async () => {
        const r = await status(slug);
        return r.status === 'completed' ? r : undefined;
      });
      assert.deepEqual(
        done.batches.map((b) => [b.excused, b.succeeded]),
        [
          [1, 0],
          [0, 3],
        ],
      );
      for (const d of second) assert.equal(d.osVersion, '3.0.0');
      assert.match(done.events.find((e) => e.kind === 'resumed')?.message ?? '', /1 failed device\(s\) excused/);
    });

    test('abort clears the OS target of devices that had not installed it; a paused or running rollout holds the release', async () => {
      const id = await osRelease('4.0.0');
      const { slug, devices } = await fleetOf(4);
      // The devices never step: batch 1 stays pending (the soak and the offline timeout are long).
      const created = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, {
        version: '4.0.0',
        batches: [50, 100],
        offlineTimeoutSeconds: 600,
      });
      const rollout = created.data as OsRollout;
      const first = devices.filter((d) => batchOf(rollout, d) === 0);
      const [byHand, other] = first;
      assert.ok(byHand && other);
      // A device cleared by hand leaves the rollout.
      assert.equal((await api('DELETE', `/api/v1/devices/${byHand.uuid}/os`)).status, 200);
      assert.deepEqual(
        (await status(slug)).devices.map((d) => d.uuid).sort(),
        devices
          .filter((d) => d !== byHand)
          .map((d) => d.uuid)
          .sort(),
        'the device cleared by hand left it',
      );
      // Paused, with no device targeting the release any more: the rollout alone holds it.
      assert.equal((await api('POST', `/api/v1/fleets/${slug}/os-rollout/pause`)).data.status, 'paused');
      assert.equal((await api('DELETE', `/api/v1/devices/${other.uuid}/os`)).status, 200);
      const held = await api('DELETE', `/api/v1/os-releases/${id}`);
      assert.equal(held.data.error.code, 'OS_RELEASE_IN_USE');
      assert.match(held.data.error.message, new RegExp(`in use: the OS rollout of fleet\\(s\\) ${slug}\\.`));

      const again = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, {
        version: '4.0.0',
        batches: [50, 100],
        offlineTimeoutSeconds: 600,
      });
      const told = devices.filter((d) => batchOf(again.data, d) === 0);
      for (const d of told) assert.equal(await targetOs(d), '4.0.0');
      assert.equal((await api('GET', `/api/v1/fleets/${slug}/os-rollout`)).data.id, again.data.id);
      const aborted = await api('POST', `/api/v1/fleets/${slug}/os-rollout/abort`);
      assert.equal(aborted.status, 200, JSON.stringify(aborted.data));
      assert.equal(aborted.data.status, 'aborted');
      for (const d of devices) assert.equal(await targetOs(d), null, d.uuid);
      const twice = await api('POST', `/api/v1/fleets/${slug}/os-rollout/abort`);
      assert.equal(twice.status, 409);
      assert.equal(twice.data.error.code, 'ROLLOUT_STATE');
      assert.equal((await api('DELETE', `/api/v1/os-releases/${id}`)).status, 204, 'nothing holds it now');
    });

    test('a fleet-wide set supersedes the OS rollout, a fleet-wide clear aborts it; another tenant sees none of it', async () => {
      await osRelease('5.0.0');
      await osRelease('5.0.1');
      const { slug, devices } = await fleetOf(2);
      const plan = { batches: [50, 100], offlineTimeoutSeconds: 600 };
      await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, { version: '5.0.0', ...plan });
      const set = await api('PUT', `/api/v1/fleets/${slug}/os`, { version: '5.0.1' });
      assert.equal(set.status, 200);
      assert.equal((await status(slug)).status, 'superseded');
      for (const d of devices) assert.equal(await targetOs(d), '5.0.1');

      await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, { version: '5.0.0', ...plan });
      const cleared = await api('DELETE', `/api/v1/fleets/${slug}/os`);
      assert.equal(cleared.data.devices.length, 2);
      const ended = await status(slug);
      assert.equal(ended.status, 'aborted');
      assert.match(ended.reason ?? '', /cleared by admin/);

      const unknown = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, { version: '9.9.9', ...plan });
      assert.equal(unknown.data.error.code, 'OS_RELEASE_NOT_FOUND');
      const badPlan = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, { version: '5.0.0', batches: [50] });
      assert.equal(badPlan.status, 400);
      assert.equal(badPlan.data.error.code, 'VALIDATION_FAILED');

      const username = `os-roll-other-${fleetNumber}`;
      const password = 'os-roll-other-password-1';
      await api('POST', '/api/v1/users', { username, password });
      const login = await apiCall(setup.server.url, 'POST', '/api/v1/auth/login', '', { username, password });
      const token = login.data.token as string;
      const other = (method: string, path: string, body?: unknown) =>
        apiCall(setup.server.url, method, path, token, body);
      for (const [method, path, body] of [
        ['GET', `/api/v1/fleets/${slug}/os-rollout`],
        ['POST', `/api/v1/fleets/${slug}/os-rollout/pause`],
        ['POST', `/api/v1/fleets/${slug}/os-rollouts`, { version: '5.0.0', ...plan }],
      ] as const) {
        const answer = await other(method, path, body);
        assert.equal(answer.status, 404, `${method} ${path}`);
        assert.equal(answer.data.error.code, 'FLEET_NOT_FOUND');
      }
    });
  });
}

const postgres = testDatabases().find((d) => d.dialect === 'postgres');

test('[postgres] two server nodes evaluating one OS rollout open each batch exactly once', {
  skip: !postgres && 'no PostgreSQL',
}, async () => {
  const setup = await serverOn(postgres!);
  const other = await startServer({
    host: '127.0.0.1',
    port: 0,
    databaseUrl: setup.databaseUrl!,
    rolloutIntervalMs: 20,
  });
  const devices: SimulatedDevice[] = [];
  try {
    const api = (method: string, path: string, body?: unknown) =>
      apiCall(setup.server.url, method, path, setup.key, body);
    const auth = basicAuth(setup.server.admin?.username ?? '', setup.key);
    const config = { deviceType: TYPE, version: '7.0.0' };
    const pushed = await pushOsImage(
      setup.server.url,
      auth,
      osRepository(setup.orgId, TYPE),
      randomBytes(4_000),
      config,
    );
    const made = await api('POST', '/api/v1/organizations/default/os-releases', {
      ...config,
      manifestDigest: pushed.digest,
    });
    assert.equal(made.status, 201, JSON.stringify(made.data));
    const slug = `osnodes${Date.now() % 100_000}`;
    const fleet = await api('POST', '/api/v1/fleets', { name: slug, slug });
    const pk = await api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
    for (let i = 0; i < 6; i++)
      devices.push(await SimulatedDevice.register(setup.server.url, fleet.data.id, pk.data.key));
    // Half the devices report to the other node: what they report is judged wherever it lands.
    for (const d of devices.slice(3)) Object.assign(d, { baseUrl: other.url });
    for (const d of devices) d.start();
    const created = await api('POST', `/api/v1/fleets/${slug}/os-rollouts`, {
      version: '7.0.0',
      batches: [20, 40, 60, 80, 100],
      soakSeconds: 0,
    });
    assert.equal(created.status, 201, JSON.stringify(created.data));
    const done = await waitFor(
      'the OS rollout to complete',
      async () => {
        const r = (await api('GET', `/api/v1/fleets/${slug}/os-rollout`)).data as OsRollout;
        return r.status === 'completed' ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.deepEqual(
      done.events.map((e) => [e.kind, e.batch]),
      [['created', null], ...[0, 1, 2, 3, 4].map((b) => ['batch-opened', b]), ['completed', 4]],
    );
    for (const d of devices) assert.deepEqual(d.osGiven, ['7.0.0']);
    assert.ok(other.app.flotilla.rollouts.advanced > 0, 'the other node took part');
  } finally {
    for (const d of devices) await d.stop();
    await other.close();
    await setup.close();
  }
});
