import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { DEVICE_CONNECT_ETAG_PARAM, DEVICE_ROUTES, generateKey, path } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { hashKey } from '../auth/keys.js';
import { startServer, type RunningServer } from '../server.js';
import { fetchTargetEtag } from '../testing/clients.js';
import { liveServerWithDevice } from '../testing/live-server.js';
import { seedDevices } from '../testing/seed-devices.js';

const DEVICES = 2_000;
/** Far past the test: only the fan-out driven by the write can tell the devices, never the safety-net sweep. */
const SWEEP_MS = 600_000;
/** Generous for a loaded 2-core CI machine; the figure printed is the measure (bench/connections.mjs: 19,000). */
const REACH_WITHIN_MS = 10_000;

/** A device holding its connection and counting `target-changed`, nothing more (thousands in one test process). */
function quietDevice(url: string, uuid: string, key: string, etag?: string) {
  const address = new URL(path(DEVICE_ROUTES.connect.path, { uuid }), url.replace('http', 'ws'));
  if (etag !== undefined) address.searchParams.set(DEVICE_CONNECT_ETAG_PARAM, etag);
  const socket = new WebSocket(address, { headers: { authorization: `Bearer ${key}` }, perMessageDeflate: false });
  const device = {
    told: 0,
    socket,
    opened: new Promise<void>((resolve, reject) => socket.on('open', resolve).on('error', reject)),
  };
  socket.on('message', (data) => {
    if ((JSON.parse(data.toString()) as { type: string }).type === 'target-changed') device.told += 1;
  });
  return device;
}

for (const db of testDatabases()) {
  test(`[${db.label}] scale: a fleet-wide change reaches each of ${DEVICES} connected devices, and one that connected just before it`, async () => {
    const options = { targetSweepMs: SWEEP_MS };
    const live = await liveServerWithDevice(db, options);
    let other: RunningServer | undefined;
    const devices: ReturnType<typeof quietDevice>[] = [];
    try {
      // On PostgreSQL the devices are spread over two nodes and the change is made on one: it travels the bus.
      if (live.databaseUrl)
        other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl, ...options });
      const urls = [live.server.url, other?.url ?? live.server.url];
      const { db: database } = live.server.app.flotilla;
      const fleet = await database
        .selectFrom('fleets')
        .select('id')
        .where('slug', '=', live.slug)
        .executeTakeFirstOrThrow();
      const keys = Array.from({ length: DEVICES }, () => generateKey());
      const seeded = await seedDevices(database, fleet.id, DEVICES, (i) => ({ key_hash: hashKey(keys[i]!) }));
      for (let i = 0; i < DEVICES; i += 250) {
        const batch = seeded.slice(i, i + 250).map((row, j) => quietDevice(urls[(i + j) % 2]!, row.uuid, keys[i + j]!));
        devices.push(...batch);
        await Promise.all(batch.map((d) => d.opened));
      }
      // Each said no ETag, so each is told once as it is greeted: then it is watched.
      await waitFor('every device greeted', () => devices.every((d) => d.told === 1), { timeoutMs: 30_000 });
      for (const d of devices) d.told = 0;

      // Connected a moment before the change, holding the current target: its greeting races the change.
      const held = await fetchTargetEtag(live.server.url, live.uuid, live.deviceKey);
      const late = quietDevice(urls[1]!, live.uuid, live.deviceKey, held);
      await late.opened;
      const started = performance.now();
      const answer = await live.api('POST', `/api/v1/fleets/${live.slug}/env`, { name: 'SCALE', value: '1' });
      assert.ok(answer.status < 300, `fleet variable: HTTP ${answer.status}`);
      const all = [...devices, late];
      await waitFor(`every device told within ${REACH_WITHIN_MS} ms`, () => all.every((d) => d.told > 0), {
        timeoutMs: REACH_WITHIN_MS,
        intervalMs: 10,
      });
      const ms = performance.now() - started;
      console.log(`# fan-out: a fleet-wide change reached ${all.length} devices in ${ms.toFixed(0)} ms (${db.label})`);
      assert.ok(
        all.every((d) => d.told === 1),
        'each device told once',
      );
    } finally {
      for (const d of devices) d.socket.terminate();
      await other?.close();
      await live.close();
    }
  });
}
