import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import type { Rollout } from '@flotilla/protocol';
import { tempDir, testDatabases, waitFor, type TestDatabase } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { readEventStream } from '../testing/clients.js';
import { apiCall } from '../testing/live-server.js';
import { SimulatedDevice } from '../testing/simulated-device.js';

/**
 * Staged rollouts on a real server, with devices speaking the device API over HTTP (testing/simulated-device.ts):
 * batches open one after the other, a failing batch pauses the rollout, abort sends devices back, a restarted
 * server goes on, an offline device holds nothing back beyond its timeout, a pinned device is left alone, and two
 * nodes over one PostgreSQL database advance a rollout once.
 */

const COMPOSITION = { services: { main: { image: 'busybox' } } };

interface Setup {
  server: RunningServer;
  dataDir: string;
  databaseUrl: string | undefined;
  key: string;
  close: () => Promise<void>;
}

async function serverOn(testDb: TestDatabase, rolloutIntervalMs = 100): Promise<Setup> {
  const dir = await tempDir('flotilla-rollouts-');
  const created = await testDb.create();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    dataDir: join(dir.path, 'data'),
    rolloutIntervalMs,
    ...(created.url ? { databaseUrl: created.url } : {}),
  });
  const setup: Setup = {
    server,
    dataDir: join(dir.path, 'data'),
    databaseUrl: created.url,
    key: server.admin!.apiKey,
    close: async () => {
      await setup.server.close();
      await created.drop();
      await dir.remove();
    },
  };
  return setup;
}

let fleetNumber = 0;
/** Devices of the running test, stopped after it whether it passed or not. */
const started: SimulatedDevice[] = [];

/** A fleet with `count` registered devices (stepping every 100 ms) running a first release, `previous`. */
async function fleetRunning(setup: Setup, count: number) {
  const api = (method: string, path: string, body?: unknown) =>
    apiCall(setup.server.url, method, path, setup.key, body);
  const slug = `roll${++fleetNumber}x${Date.now() % 100_000}`;
  const fleet = await api('POST', '/api/v1/fleets', { name: slug, slug });
  assert.equal(fleet.status, 201, JSON.stringify(fleet.data));
  const pk = await api('POST', `/api/v1/fleets/${slug}/provisioning-keys`, {});
  const devices: SimulatedDevice[] = [];
  for (let i = 0; i < count; i++)
    devices.push(await SimulatedDevice.register(setup.server.url, fleet.data.id, pk.data.key));
  started.push(...devices);
  const previous = await api('POST', `/api/v1/fleets/${slug}/releases`, {
    composition: COMPOSITION,
    status: 'success',
  });
  assert.equal(previous.status, 201, JSON.stringify(previous.data));
  for (const d of devices) d.start();
  await waitFor('every device to run the first release', () =>
    devices.every((d) => d.running === previous.data.commit),
  );
  return { api, slug, fleetId: fleet.data.id as number, devices, previous: previous.data.commit as string };
}

type Api = Awaited<ReturnType<typeof fleetRunning>>['api'];

/** `flotilla deploy --rollout`'s calls: a running release, its rollout, then the release marked successful. */
async function deployWithRollout(api: Api, slug: string, plan: Record<string, unknown>) {
  const release = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition: COMPOSITION, status: 'running' });
  assert.equal(release.status, 201);
  const rollout = await api('POST', `/api/v1/fleets/${slug}/rollouts`, { release: release.data.id, ...plan });
  assert.equal(rollout.status, 201, JSON.stringify(rollout.data));
  assert.equal((rollout.data as Rollout).waiting, true);
  const done = await api('PATCH', `/api/v1/releases/${release.data.id}`, { status: 'success' });
  assert.equal(done.status, 200);
  return { commit: release.data.commit as string, rollout: rollout.data as Rollout };
}

const status = async (api: Api, slug: string): Promise<Rollout> => {
  const answer = await api('GET', `/api/v1/fleets/${slug}/rollout`);
  assert.equal(answer.status, 200, JSON.stringify(answer.data));
  return answer.data as Rollout;
};

const inBatch = (rollout: Rollout, devices: SimulatedDevice[], batch: number) =>
  devices.filter((d) => rollout.devices.find((r) => r.uuid === d.uuid)?.batch === batch);

for (const testDb of testDatabases()) {
  describe(`staged rollouts (${testDb.label})`, () => {
    let setup: Setup;
    before(async () => {
      setup = await serverOn(testDb);
    });
    afterEach(async () => {
      for (const d of started.splice(0)) await d.stop();
    });
    after(async () => setup.close());

    test('a good release goes through every batch in turn, each after its soak time', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 4);
      const { commit } = await deployWithRollout(api, slug, { batches: [25, 50, 100], soakSeconds: 3 });
      let rollout = await status(api, slug);
      assert.deepEqual(
        rollout.batches.map((b) => [b.label, b.devices]),
        [
          ['25%', 1],
          ['50%', 1],
          ['100%', 2],
        ],
      );
      const first = inBatch(rollout, devices, 0);
      await waitFor('batch 1 to run the release', () => first.every((d) => d.running === commit));
      // The later batches are still on the previous release: nothing opened them yet (the soak is 3 s).
      for (const d of [...inBatch(rollout, devices, 1), ...inBatch(rollout, devices, 2)]) {
        await d.step();
        assert.equal(d.running, previous);
      }
      const device = await api('GET', `/api/v1/devices/${inBatch(rollout, devices, 2)[0]!.uuid}`);
      assert.equal(device.data.targetRelease, previous, 'the API shows the target the device gets');
      rollout = await waitFor('the rollout to complete', async () => {
        const r = await status(api, slug);
        return r.status === 'completed' ? r : undefined;
      });
      for (const d of devices) await waitFor('every device to run the release', () => d.running === commit);
      assert.deepEqual(
        rollout.events.map((e) => [e.kind, e.batch]),
        [
          ['created', null],
          ['batch-opened', 0],
          ['batch-opened', 1],
          ['batch-opened', 2],
          ['completed', 2],
        ],
      );
      const opened = rollout.events.filter((e) => e.kind === 'batch-opened').map((e) => Date.parse(e.at));
      for (let i = 1; i < opened.length; i++)
        assert.ok(opened[i]! - opened[i - 1]! >= 3_000, 'a batch opens only after the previous one soaked 3 s');
      assert.ok(rollout.devices.every((d) => d.state === 'succeeded'));
      for (const d of devices) await d.stop();
    });

    test('a failing batch pauses the rollout with the reason; resume excuses it; abort sends every device back', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 4);
      let failing = '';
      for (const d of devices) d.decide = (c) => (c === failing ? 'fail' : 'healthy');
      const release = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition: COMPOSITION });
      failing = release.data.commit;
      const created = await api('POST', `/api/v1/fleets/${slug}/rollouts`, {
        release: release.data.commit,
        batches: [25, 100],
        soakSeconds: 0,
      });
      assert.equal(created.status, 201);
      await api('PATCH', `/api/v1/releases/${release.data.id}`, { status: 'success' });
      let rollout = await waitFor('the rollout to pause', async () => {
        const r = await status(api, slug);
        return r.status === 'paused' ? r : undefined;
      });
      assert.match(rollout.reason ?? '', /^batch 1: 1 of 1 device\(s\) failed, more than 10%$/);
      const [canary] = inBatch(rollout, devices, 0);
      assert.deepEqual(canary!.given, [previous, failing]);
      assert.equal(rollout.devices.find((d) => d.uuid === canary!.uuid)?.state, 'failed');
      // The fleet's view says so in short (the dashboard's fleet page shows it without asking for the rollout).
      const view = await api('GET', `/api/v1/fleets/${slug}`);
      assert.deepEqual(view.data.rollout, { id: rollout.id, status: 'paused', release: rollout.release });
      // Nobody else was given the release.
      for (const d of inBatch(rollout, devices, 1)) {
        await d.step();
        assert.deepEqual(d.given, [previous]);
      }
      // Pausing twice is refused with its code; an unknown fleet is not found.
      const again = await api('POST', `/api/v1/fleets/${slug}/rollout/pause`);
      assert.equal(again.status, 409);
      assert.equal(again.data.error.code, 'ROLLOUT_STATE');
      const other = await api('POST', '/api/v1/fleets/no-such-fleet/rollout/abort');
      assert.equal(other.data.error.code, 'FLEET_NOT_FOUND');
      // Resumed, the failure is excused: the next batch opens, fails too, and pauses it again.
      const resumed = await api('POST', `/api/v1/fleets/${slug}/rollout/resume`);
      assert.equal(resumed.status, 200);
      rollout = await waitFor('the rollout to pause again', async () => {
        const r = await status(api, slug);
        return r.status === 'paused' && r.currentBatch === 1 ? r : undefined;
      });
      assert.match(rollout.reason ?? '', /^batch 2: [1-3] of 3 device\(s\) failed/);
      const aborted = await api('POST', `/api/v1/fleets/${slug}/rollout/abort`);
      assert.equal(aborted.status, 200);
      assert.equal((aborted.data as Rollout).status, 'aborted');
      assert.equal((await api('GET', `/api/v1/fleets/${slug}`)).data.rollout.status, 'aborted');
      for (const d of devices) {
        await d.step();
        assert.equal(d.running, previous);
      }
      for (const d of devices) await d.stop();
    });

    test('a rollout that supersedes a paused one stages from the release the fleet ran, not the paused one', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 4);
      try {
        let failing = '';
        for (const d of devices) d.decide = (c) => (c === failing ? 'fail' : 'healthy');
        const bad = await api('POST', `/api/v1/fleets/${slug}/releases`, {
          composition: COMPOSITION,
          status: 'running',
        });
        failing = bad.data.commit;
        await api('POST', `/api/v1/fleets/${slug}/rollouts`, {
          release: bad.data.id,
          batches: [25, 100],
          soakSeconds: 0,
        });
        await api('PATCH', `/api/v1/releases/${bad.data.id}`, { status: 'success' });
        await waitFor('the rollout to pause', async () => (await status(api, slug)).status === 'paused');
        const givenBefore = new Map(devices.map((d) => [d, d.given.length]));
        const canary = inBatch(await status(api, slug), devices, 0);
        // The fix goes out staged, with a long soak: only its first batch is given it. While it is still being
        // deployed, its rollout has superseded the paused one, and the paused release must reach nobody new.
        const building = await api('POST', `/api/v1/fleets/${slug}/releases`, {
          composition: COMPOSITION,
          status: 'running',
        });
        const created = await api('POST', `/api/v1/fleets/${slug}/rollouts`, {
          release: building.data.id,
          batches: [25, 100],
          soakSeconds: 600,
        });
        assert.equal(created.status, 201, JSON.stringify(created.data));
        for (const d of devices.filter((x) => !canary.includes(x))) {
          await d.step();
          assert.ok(!d.given.slice(givenBefore.get(d)).includes(failing), 'while the fix builds, nobody new gets it');
        }
        await api('PATCH', `/api/v1/releases/${building.data.id}`, { status: 'success' });
        const fix = building.data.commit as string;
        const rollout = await status(api, slug);
        assert.equal(rollout.previousRelease?.commit, previous, 'staged from what the fleet ran before the failure');
        const first = inBatch(rollout, devices, 0);
        await waitFor('batch 1 to run the fix', () => first.every((d) => d.running === fix));
        for (const d of inBatch(rollout, devices, 1)) {
          await d.step();
          const since = d.given.slice(givenBefore.get(d));
          assert.ok(!since.includes(failing), 'no device outside the opened batch is given the paused release');
          assert.equal(d.running, previous);
        }
      } finally {
        for (const d of devices) await d.stop();
      }
    });

    test('abort while a batch soaks sends its devices back to the previous release', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 3);
      const { commit } = await deployWithRollout(api, slug, { batches: [34, 100], soakSeconds: 600 });
      const rollout = await status(api, slug);
      const first = inBatch(rollout, devices, 0);
      assert.equal(first.length, 2);
      await waitFor('batch 1 to run the release', () => first.every((d) => d.running === commit));
      const aborted = await api('POST', `/api/v1/fleets/${slug}/rollout/abort`);
      assert.equal(aborted.data.status, 'aborted');
      for (const d of first) await waitFor('the device to go back', () => d.running === previous);
      const device = await api('GET', `/api/v1/devices/${first[0]!.uuid}`);
      assert.equal(device.data.targetRelease, previous);
      assert.equal((await api('POST', `/api/v1/fleets/${slug}/rollout/resume`)).data.error.code, 'ROLLOUT_STATE');
      for (const d of devices) await d.stop();
    });

    test('an offline device holds its batch back only until the offline timeout; it updates when it comes back', async () => {
      const { api, slug, devices } = await fleetRunning(setup, 3);
      const [online, offline] = devices as [SimulatedDevice, SimulatedDevice];
      for (const d of [online, offline])
        assert.equal(
          (await api('POST', `/api/v1/devices/${d.uuid}/tags`, { key: 'canary', value: 'true' })).status,
          200,
        );
      await offline.stop();
      const { commit } = await deployWithRollout(api, slug, {
        batches: [100],
        tag: { key: 'canary', value: 'true' },
        soakSeconds: 0,
        offlineTimeoutSeconds: 2,
      });
      let rollout = await status(api, slug);
      assert.deepEqual(
        rollout.batches.map((b) => [b.label, b.devices]),
        [
          ['canary=true', 2],
          ['100%', 1],
        ],
      );
      const started = Date.now();
      rollout = await waitFor('the second batch to open', async () => {
        const r = await status(api, slug);
        return r.currentBatch === 1 ? r : undefined;
      });
      assert.ok(Date.now() - started >= 1_500, 'the offline device held the batch back until its timeout');
      assert.equal(rollout.devices.find((d) => d.uuid === offline.uuid)?.state, 'offline');
      await waitFor('the rollout to complete', async () => (await status(api, slug)).status === 'completed');
      offline.start();
      await waitFor('the device back online to update', () => offline.running === commit);
      for (const d of devices) await d.stop();
    });

    test('named rollout policies: stored with their defaults, replaced by name, deleted', async () => {
      const { api, slug, devices } = await fleetRunning(setup, 1);
      for (const d of devices) await d.stop();
      const path = `/api/v1/fleets/${slug}/rollout-policies`;
      let answer = await api('PUT', `${path}/canary`, { batches: [10, 100] });
      assert.equal(answer.status, 200, JSON.stringify(answer.data));
      assert.deepEqual(answer.data.plan, {
        batches: [10, 100],
        soakSeconds: 300,
        offlineTimeoutSeconds: 1800,
        successThreshold: 100,
        failureThreshold: 10,
      });
      answer = await api('PUT', `${path}/canary`, {
        batches: [100],
        tag: { key: 'canary', value: 'true' },
        soakSeconds: 5,
      });
      assert.equal(answer.data.plan.soakSeconds, 5);
      await api('PUT', `${path}/all-at-once`, { batches: [100], soakSeconds: 0 });
      const listed = await api('GET', path);
      assert.deepEqual(
        listed.data.items.map((p: { name: string; plan: { batches: number[] } }) => [p.name, p.plan.batches]),
        [
          ['all-at-once', [100]],
          ['canary', [100]],
        ],
      );
      for (const [name, body] of [
        ['Bad Name', { batches: [100] }],
        ['ok', { batches: [100, 50] }],
        ['ok', { batches: [100], extra: 1 }],
      ] as const)
        assert.equal(
          (await api('PUT', `${path}/${encodeURIComponent(name)}`, body)).data.error.code,
          'VALIDATION_FAILED',
        );
      assert.equal((await api('DELETE', `${path}/canary`)).status, 204);
      assert.equal((await api('DELETE', `${path}/canary`)).data.error.code, 'ROLLOUT_POLICY_NOT_FOUND');
      assert.equal((await api('GET', path)).data.items.length, 1);
    });

    test('a release that fails to deploy cancels its rollout; a finished release cannot be staged', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 2);
      const release = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition: COMPOSITION });
      await api('POST', `/api/v1/fleets/${slug}/rollouts`, { release: release.data.id, batches: [100] });
      await api('PATCH', `/api/v1/releases/${release.data.id}`, { status: 'failed' });
      const rollout = await waitFor('the rollout to be cancelled', async () => {
        const r = await status(api, slug);
        return r.status === 'cancelled' ? r : undefined;
      });
      assert.equal(rollout.reason, 'the release failed');
      const again = await api('POST', `/api/v1/fleets/${slug}/rollouts`, { release: release.data.id, batches: [100] });
      assert.equal(again.status, 409);
      assert.equal(again.data.error.code, 'ROLLOUT_STATE');
      const draft = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition: COMPOSITION, isFinal: false });
      const refused = await api('POST', `/api/v1/fleets/${slug}/rollouts`, { release: draft.data.id, batches: [100] });
      assert.equal(refused.data.error.code, 'ROLLOUT_STATE');
      const bad = await api('POST', `/api/v1/fleets/${slug}/rollouts`, { release: draft.data.id, batches: [50, 20] });
      assert.equal(bad.data.error.code, 'VALIDATION_FAILED');
      for (const d of devices) {
        await d.step();
        assert.deepEqual(d.given, [previous]);
        await d.stop();
      }
    });

    test("opening a batch tells the fleet's live feed each of its devices with its new target", async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 2);
      const stream = readEventStream(`${setup.server.url}/api/v1/fleets/${slug}/events`, {
        authorization: `Bearer ${setup.key}`,
      });
      await stream.ready;
      // Silent devices: what the feed says of them comes from the rollout, not from their reports.
      for (const d of devices) await d.stop();
      const release = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition: COMPOSITION });
      await api('POST', `/api/v1/fleets/${slug}/rollouts`, {
        release: release.data.id,
        batches: [50, 100],
        offlineTimeoutSeconds: 0,
      });
      await api('PATCH', `/api/v1/releases/${release.data.id}`, { status: 'success' });
      const rollout = await waitFor('the second batch to open', async () => {
        const r = await status(api, slug);
        return r.currentBatch === 1 ? r : undefined;
      });
      const [late] = inBatch(rollout, devices, 1);
      const event = await waitFor('the device event of the second batch', () =>
        stream.events.find(
          (e) => e.type === 'device' && e.data.uuid === late!.uuid && e.data.targetRelease === release.data.commit,
        ),
      );
      assert.notEqual(event.data.targetRelease, previous);
      stream.close();
    });

    test('a device pinned by hand is in no batch and keeps its release', async () => {
      const { api, slug, devices, previous } = await fleetRunning(setup, 3);
      const [pinned] = devices as [SimulatedDevice];
      assert.equal((await api('PATCH', `/api/v1/devices/${pinned.uuid}`, { pinnedRelease: previous })).status, 200);
      const { commit } = await deployWithRollout(api, slug, { batches: [50, 100], soakSeconds: 0 });
      const rollout = await waitFor('the rollout to complete', async () => {
        const r = await status(api, slug);
        return r.status === 'completed' ? r : undefined;
      });
      assert.equal(rollout.devices.length, 2);
      assert.ok(!rollout.devices.some((d) => d.uuid === pinned.uuid));
      for (const d of devices.slice(1)) await waitFor('the others to update', () => d.running === commit);
      await pinned.step();
      assert.deepEqual(pinned.given, [previous]);
      for (const d of devices) await d.stop();
    });

    test('a server restarted mid-rollout goes on where it was', async () => {
      const { api, slug, devices } = await fleetRunning(setup, 4);
      const { commit } = await deployWithRollout(api, slug, { batches: [25, 100], soakSeconds: 8 });
      const rollout = await status(api, slug);
      const first = inBatch(rollout, devices, 0);
      await waitFor('batch 1 to run the release', () => first.every((d) => d.running === commit));
      for (const d of devices) await d.stop();
      const port = Number(new URL(setup.server.url).port);
      await setup.server.close();
      setup.server = await startServer({
        host: '127.0.0.1',
        port,
        dataDir: setup.dataDir,
        rolloutIntervalMs: 100,
        ...(setup.databaseUrl ? { databaseUrl: setup.databaseUrl } : {}),
      });
      assert.equal((await status(api, slug)).currentBatch, 0, 'the soak is not over: batch 2 is still closed');
      for (const d of devices) d.start();
      const done = await waitFor('the rollout to complete after the restart', async () => {
        const r = await status(api, slug);
        return r.status === 'completed' ? r : undefined;
      });
      // Went on where it was: batch 1 opened once, before the restart, and was not started over.
      assert.deepEqual(
        done.events.map((e) => [e.kind, e.batch]),
        [
          ['created', null],
          ['batch-opened', 0],
          ['batch-opened', 1],
          ['completed', 1],
        ],
      );
      for (const d of devices) await waitFor('every device to run the release', () => d.running === commit);
      for (const d of devices) await d.stop();
    });
  });
}

for (const testDb of testDatabases()) {
  test(`a failure reported before any timer evaluated the rollout pauses it all the same (${testDb.label})`, async () => {
    // The timer never runs in this test: only the device's reports drive the rollout.
    const setup = await serverOn(testDb, 600_000);
    try {
      const { api, slug, devices } = await fleetRunning(setup, 2);
      for (const d of devices) d.decide = (c) => (c === devices[0]!.running ? 'healthy' : 'fail');
      await deployWithRollout(api, slug, { batches: [50, 100], soakSeconds: 0 });
      const rollout = await waitFor('the rollout to pause', async () => {
        const r = await status(api, slug);
        return r.status === 'paused' ? r : undefined;
      });
      assert.match(rollout.reason ?? '', /^batch 1: 1 of 1 device\(s\) failed/);
      for (const d of devices) await d.stop();
    } finally {
      await setup.close();
    }
  });
}

const postgres = testDatabases().find((d) => d.dialect === 'postgres');

test('[postgres] two server nodes evaluating one rollout advance it exactly once per batch', {
  skip: !postgres && 'no PostgreSQL',
}, async () => {
  const setup = await serverOn(postgres!);
  const other = await startServer({
    host: '127.0.0.1',
    port: 0,
    databaseUrl: setup.databaseUrl!,
    rolloutIntervalMs: 20,
  });
  try {
    const { api, slug, devices } = await fleetRunning(setup, 6);
    // Half the devices report to the other node: a failure or success is seen wherever it lands.
    for (const d of devices.slice(3)) Object.assign(d, { baseUrl: other.url });
    const { commit } = await deployWithRollout(api, slug, { batches: [20, 40, 60, 80, 100], soakSeconds: 0 });
    const rollout = await waitFor(
      'the rollout to complete',
      async () => {
        const r = await status(api, slug);
        return r.status === 'completed' ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    for (const d of devices) await waitFor('every device to run the release', () => d.running === commit);
    assert.deepEqual(
      rollout.events.map((e) => [e.kind, e.batch]),
      [['created', null], ...[0, 1, 2, 3, 4].map((b) => ['batch-opened', b]), ['completed', 4]],
    );
    assert.ok(other.app.flotilla.rollouts.advanced > 0, 'the other node took part');
    for (const d of devices) await d.stop();
  } finally {
    await other.close();
    await setup.close();
  }
});
