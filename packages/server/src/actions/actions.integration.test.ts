import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import WebSocket from 'ws';
import { DEVICE_ROUTES, generateDeviceUuid, generateKey, path } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { connectDevice, fetchTargetEtag } from '../testing/clients.js';
import { ORPHANED_ACTION_ERROR } from './actions.js';
import { liveServerWithDevice } from '../testing/live-server.js';

/** Makes every write that records an action's hand-over (`delivered_at`) take `ms` longer, holding no row lock. */
async function slowDownHandOver(databaseUrl: string, ms: number): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`CREATE FUNCTION slow_hand_over() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF current_query() LIKE '%delivered_at%' THEN PERFORM pg_sleep(${ms / 1000}); END IF; RETURN NULL; END $$`);
    await client.query(
      'CREATE TRIGGER slow_hand_over BEFORE UPDATE ON device_actions FOR EACH STATEMENT EXECUTE FUNCTION slow_hand_over()',
    );
  } finally {
    await client.end();
  }
}

for (const db of testDatabases()) {
  test(`[${db.label}] actions reach an online device within a second, and an offline one when it reconnects`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, uuid, deviceKey } = live;
    const act = (body: unknown) => live.api('POST', `/api/v1/devices/${uuid}/actions`, body);
    try {
      // Offline: queued, delivered on connect, in order; an expired one is not delivered.
      const queued = await act({ action: 'identify' });
      assert.equal(queued.status, 201);
      assert.equal(queued.data.status, 'pending');
      await act({ action: 'restart-service', service: 'main' });
      const expiring = await act({ action: 'reboot', ttlSeconds: 1 });
      // Its 1 s time to live must pass before the device connects: the passing time is the input under test.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const device = connectDevice(server.url, uuid, deviceKey, (m) =>
        m.action === 'restart-service'
          ? { ok: false, error: { code: 'UPDATE_LOCKED', message: 'lock held' } }
          : { ok: true },
      );
      await device.opened;
      await waitFor('queued actions delivered', () => device.received.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(
        device.received.map((m) => m.action),
        ['identify', 'restart-service'],
      );
      assert.equal(device.received[1]!.service, 'main');
      await waitFor('results recorded', async () => {
        const list = await live.api('GET', `/api/v1/devices/${uuid}/actions`);
        return list.data.items.filter((a: { status: string }) => a.status === 'done' || a.status === 'failed')
          .length === 2
          ? list
          : undefined;
      });
      const failed = await live.api('GET', `/api/v1/devices/${uuid}/actions/${queued.data.id + 1}`);
      assert.deepEqual([failed.data.status, failed.data.error.code], ['failed', 'UPDATE_LOCKED']);
      assert.equal(
        (await live.api('GET', `/api/v1/devices/${uuid}/actions/${expiring.data.id}`)).data.status,
        'expired',
      );

      // Online: the answer comes back in the same request, every time, also when actions come in together.
      const elapsed: number[] = [];
      for (let round = 0; round < 3; round += 1) {
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            const started = performance.now();
            const online = await act({ action: 'update' });
            elapsed.push(performance.now() - started);
            assert.equal(online.data.status, 'done');
          }),
        );
      }
      elapsed.sort((a, b) => a - b);
      assert.ok(elapsed.at(-1)! < 1_000, `slowest round trip ${elapsed.at(-1)!.toFixed(1)} ms`);
      console.log(
        `# action round trip to an online device, 10 at once: median ${elapsed[15]!.toFixed(1)} ms, slowest ${elapsed.at(-1)!.toFixed(1)} ms of 30 (${db.label})`,
      );

      // A slow database (a loaded or distant one; here PostgreSQL made slow at the hand-over write) must not cost the
      // answer: it still comes back in the same request.
      if (live.databaseUrl) {
        await slowDownHandOver(live.databaseUrl, 300);
        const started = performance.now();
        const early = await act({ action: 'identify' });
        const took = performance.now() - started;
        assert.equal(early.data.status, 'done');
        assert.ok(took < 1_000, `answered through a slow database after ${took.toFixed(1)} ms`);
      }
      device.close();
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] an action its connection took but never answered is settled failed when the device comes back; one queued meanwhile is delivered`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, uuid, deviceKey } = live;
    const act = (body: unknown, wait = 0) => live.api('POST', `/api/v1/devices/${uuid}/actions?wait=${wait}`, body);
    try {
      // A connection that takes an action and dies without answering: as when its node is killed -9 mid-action.
      const address = new URL(path(DEVICE_ROUTES.connect.path, { uuid }), server.url.replace('http', 'ws'));
      const dying = new WebSocket(address, { headers: { authorization: `Bearer ${deviceKey}` } });
      const took = new Promise<number>((resolve) =>
        dying.on('message', (data) => {
          const message = JSON.parse(data.toString()) as { type: string; id: number };
          if (message.type !== 'action') return;
          dying.terminate();
          resolve(message.id);
        }),
      );
      await new Promise((resolve, reject) => dying.on('open', resolve).on('error', reject));
      const orphan = await act({ action: 'restart' });
      assert.equal(await took, orphan.data.id);
      await waitFor('the connection gone', async () => {
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        return /^flotilla_device_connections 0$/m.test(metrics);
      });
      assert.equal((await act({ action: 'identify' })).data.status, 'pending');
      assert.equal(
        (await live.api('GET', `/api/v1/devices/${uuid}/actions/${orphan.data.id}`)).data.status,
        'delivered',
      );

      const device = connectDevice(server.url, uuid, deviceKey);
      await device.opened;
      await waitFor('the queued action answered', async () => {
        const { data } = await live.api('GET', `/api/v1/devices/${uuid}/actions`);
        return data.items.every((a: { status: string }) => a.status === 'done' || a.status === 'failed')
          ? data
          : undefined;
      });
      const after = await live.api('GET', `/api/v1/devices/${uuid}/actions/${orphan.data.id}`);
      assert.deepEqual([after.data.status, after.data.error], ['failed', ORPHANED_ACTION_ERROR]);
      assert.deepEqual(
        device.received.map((m) => m.action),
        ['identify'],
        'the orphan is not handed over again (the device may have run it); the queued one is',
      );
      // The new connection's own hand-overs are not orphans: an action now is answered.
      assert.equal((await act({ action: 'update' }, 5_000)).data.status, 'done');
      device.close();
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] the device connection refuses wrong keys, and users cannot act on others' devices`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, uuid } = live;
    try {
      await assert.rejects(connectDevice(server.url, uuid, generateKey()).opened, /401/);
      await assert.rejects(connectDevice(server.url, generateDeviceUuid(), generateKey()).opened, /401/);
      assert.equal(
        (await live.api('POST', `/api/v1/devices/${uuid}/actions`, { action: 'reboot' }, 'wrong')).status,
        401,
      );
      const bad = await live.api('POST', `/api/v1/devices/${uuid}/actions`, { action: 'explode' });
      assert.equal(bad.data.error.code, 'VALIDATION_FAILED');
      const noService = await live.api('POST', `/api/v1/devices/${uuid}/actions`, { action: 'stop-service' });
      assert.equal(noService.data.error.code, 'VALIDATION_FAILED');
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] a connected device is told at once when its target changes, and only then`, async () => {
    const live = await liveServerWithDevice(db);
    try {
      const etag = await fetchTargetEtag(live.server.url, live.uuid, live.deviceKey);
      const device = connectDevice(live.server.url, live.uuid, live.deviceKey, undefined, { etag });
      await device.opened;
      // Nothing may arrive while nothing changes: the quiet stretch is what this checks.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      assert.deepEqual(device.announcements, [], 'no change, no announcement');
      const started = performance.now();
      assert.ok(
        (await live.api('POST', `/api/v1/fleets/${live.slug}/env`, { name: 'GREETING', value: 'hi' })).status < 300,
      );
      await waitFor('target-changed', () => device.announcements.length > 0, { timeoutMs: 5_000 });
      console.log(`# target change announced after ${(performance.now() - started).toFixed(0)} ms (${db.label})`);
      assert.deepEqual(device.announcements, ['target-changed']);
      device.close();
    } finally {
      await live.close();
    }
  });
}
