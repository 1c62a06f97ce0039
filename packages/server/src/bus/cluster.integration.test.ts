import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { connectDevice, followLogs } from '../testing/clients.js';
import { liveServerWithDevice, postDeviceLogs, type LiveDevice } from '../testing/live-server.js';

/**
 * Two server nodes over one PostgreSQL database, as behind a load balancer: the device is connected to one, the
 * user talks to the other. (SQLite is one node's own database, so these run on PostgreSQL only.)
 */
async function twoNodes(): Promise<{
  live: LiveDevice;
  other: RunningServer;
  databaseUrl: string;
  close: () => Promise<void>;
}> {
  const postgres = testDatabases().find((d) => d.dialect === 'postgres')!;
  const live = await liveServerWithDevice(postgres);
  const other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl! });
  return {
    live,
    other,
    databaseUrl: live.databaseUrl!,
    close: async () => {
      await other.close();
      await live.close();
    },
  };
}

/** The backend pids of the server bus's listening connections to this database; `terminate` ends them first. */
async function busListeners(databaseUrl: string, terminate = false): Promise<number[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const where = "application_name = 'flotilla-bus' and datname = current_database() and pid <> pg_backend_pid()";
    if (terminate) await client.query(`select pg_terminate_backend(pid) from pg_stat_activity where ${where}`);
    const { rows } = await client.query<{ pid: number }>(`select pid from pg_stat_activity where ${where}`);
    return rows.map((r) => r.pid);
  } finally {
    await client.end();
  }
}

/** Queues an action for the device in the database without telling any node; its id. */
async function queueSilently(databaseUrl: string, uuid: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const now = new Date();
    const { rows } = await client.query<{ id: number }>(
      `insert into device_actions (device_id, action, service, force, status, error_code, error_message, created_at, expires_at, delivered_at, completed_at)
       select id, 'identify', null, 0, 'pending', null, null, $2, $3, null, null from devices where uuid = $1 returning id`,
      [uuid, now.toISOString(), new Date(now.getTime() + 3600_000).toISOString()],
    );
    return rows[0]!.id;
  } finally {
    await client.end();
  }
}

const hasPostgres = testDatabases().some((d) => d.dialect === 'postgres');

test('[postgres] an action made on one node reaches a device connected to another, and its answer comes back', {
  skip: !hasPostgres && 'no PostgreSQL',
}, async () => {
  const { live, other, databaseUrl, close } = await twoNodes();
  const actOnA = (body: unknown) => live.api('POST', `/api/v1/devices/${live.uuid}/actions`, body);
  try {
    const device = connectDevice(other.url, live.uuid, live.deviceKey, (m) =>
      m.action === 'reboot' ? { ok: false, error: { code: 'UPDATE_LOCKED', message: 'lock held' } } : { ok: true },
    );
    await device.opened;
    const elapsed: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const started = performance.now();
      const answered = await actOnA({ action: 'identify' });
      elapsed.push(performance.now() - started);
      assert.equal(answered.data.status, 'done', JSON.stringify(answered.data));
    }
    const failed = await actOnA({ action: 'reboot' });
    assert.deepEqual([failed.data.status, failed.data.error?.code], ['failed', 'UPDATE_LOCKED']);
    assert.equal(device.received.length, 6, 'each action reached the device once');
    console.log(`# action through another node: slowest of 5 answered in ${Math.max(...elapsed).toFixed(1)} ms`);

    // The bus's connection drops (a database restart, a failover): it reconnects, and actions flow again.
    // An action whose news was lost (queued straight into the database, nobody told) is offered again once the
    // bus is back, by the node holding the device.
    const before = await busListeners(databaseUrl);
    assert.equal(before.length, 2, 'one listener per node');
    const lost = await queueSilently(databaseUrl, live.uuid);
    await busListeners(databaseUrl, true);
    await waitFor(
      'both nodes listening again, on new connections',
      async () => {
        const now = await busListeners(databaseUrl);
        return now.length === 2 && now.every((pid) => !before.includes(pid));
      },
      { timeoutMs: 10_000 },
    );
    await waitFor(
      'the lost action delivered and answered',
      async () => (await live.api('GET', `/api/v1/devices/${live.uuid}/actions/${lost}`)).data.status === 'done',
      { timeoutMs: 10_000 },
    );
    assert.equal(device.received.filter((m) => m.id === lost).length, 1, 'exactly once');
    assert.equal((await actOnA({ action: 'identify' })).data.status, 'done', 'delivered after the bus reconnected');

    // Nobody holds the device's connection: the node answers "pending" at once, and the device gets it on connect.
    device.close();
    await waitFor('the other node to let the connection go', async () =>
      /^flotilla_device_connections 0$/m.test(await (await fetch(`${other.url}/metrics`)).text()),
    );
    const started = performance.now();
    const queued = await actOnA({ action: 'identify' });
    assert.equal(queued.data.status, 'pending');
    assert.ok(performance.now() - started < 1_000, 'an offline device does not hold the request for the whole wait');
    const again = connectDevice(other.url, live.uuid, live.deviceKey);
    await again.opened;
    await waitFor('the queued action on reconnect', () => again.received.length === 1);
    again.close();
  } finally {
    await close();
  }
});

test('[postgres] a follower on one node sees, in order, the lines a device sends to another', {
  skip: !hasPostgres && 'no PostgreSQL',
}, async () => {
  const { live, other, close } = await twoNodes();
  try {
    const seen: string[] = [];
    const stream = followLogs(`${live.server.url}/api/v1/devices/${live.uuid}/logs?follow=1&tail=0`, live.apiKey, (e) =>
      seen.push(e.message),
    );
    await stream.ready;
    const started = performance.now();
    for (let batch = 0; batch < 5; batch += 1) {
      const lines = Array.from({ length: 20 }, (_, i) => ({
        message: `line ${batch * 20 + i}`,
        timestamp: Date.now(),
        serviceName: 'main',
      }));
      assert.equal(await postDeviceLogs(other.url, live.uuid, live.deviceKey, lines), 201);
    }
    await waitFor('100 lines on the other node', () => seen.length >= 100, { timeoutMs: 5_000 });
    console.log(`# 100 lines followed through another node in ${(performance.now() - started).toFixed(0)} ms`);
    stream.close();
    assert.deepEqual(
      seen,
      Array.from({ length: 100 }, (_, i) => `line ${i}`),
    );
  } finally {
    await close();
  }
});
