import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { ONLINE_WINDOW_MS } from '../fleets/fleets.js';
import { startServer, type RunningServer } from '../server.js';
import { readEventStream, type ServerEvent } from '../testing/clients.js';
import { seedDevices } from '../testing/seed-devices.js';
import { apiCall, liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';

/** What the issue promises: a change is on the follower's screen within 2 s. */
const DEADLINE_MS = 2_000;

type Stream = ReturnType<typeof readEventStream>;

function follow(url: string, slug: string, key: string): Stream {
  return readEventStream(`${url}/api/v1/fleets/${slug}/events`, { authorization: `Bearer ${key}` });
}

/** The first event after `from` (an index into the stream's events) that `match` accepts; its latency from `since`. */
async function eventAfter(
  stream: Stream,
  from: number,
  what: string,
  match: (event: ServerEvent) => boolean,
  since: number,
  latencies: Record<string, number>,
): Promise<ServerEvent> {
  const event = await waitFor(what, () => stream.events.slice(from).find(match), {
    timeoutMs: DEADLINE_MS + 1_000,
    intervalMs: 10,
  });
  const ms = event.at - since;
  latencies[what] = Math.round(ms);
  assert.ok(ms < DEADLINE_MS, `${what} took ${ms.toFixed(0)} ms`);
  return event;
}

/** A device report as the agent sends it. */
async function report(url: string, uuid: string, deviceKey: string, body: Record<string, unknown>) {
  const res = await fetch(`${url}/device/v3/state`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${deviceKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ [uuid]: body }),
  });
  assert.equal(res.status, 200);
}

for (const testDb of testDatabases()) {
  describe(`GET /api/v1/fleets/:slug/events: live device news (${testDb.label})`, () => {
    let live: LiveDevice;
    let stream: Stream;
    const latencies: Record<string, number> = {};
    const isDevice = (uuid: string, check: (d: Record<string, unknown>) => boolean) => (e: ServerEvent) =>
      e.type === 'device' && e.data.uuid === uuid && check(e.data);

    before(async () => {
      live = await liveServerWithDevice(testDb);
      stream = follow(live.server.url, live.slug, live.apiKey);
      await stream.ready;
    });
    after(async () => {
      stream.close();
      console.log(`# fleet event latency (${testDb.label}): ${JSON.stringify(latencies)}`);
      await live.close();
    });

    test('a state report reaches the follower, as the Device the API shows', async () => {
      const from = stream.events.length;
      const since = performance.now();
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Updating', os_version: 'balenaOS 6' });
      const event = await eventAfter(
        stream,
        from,
        'report',
        isDevice(live.uuid, (d) => d.status === 'Updating'),
        since,
        latencies,
      );
      const shown = await live.api('GET', `/api/v1/devices/${live.uuid}`);
      assert.deepEqual(event.data, shown.data);
      assert.equal(event.data.isOnline, true);
    });

    test('rename, tags and a new target release (a fleet-wide change) reach the follower', async () => {
      let from = stream.events.length;
      let since = performance.now();
      assert.equal((await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { name: 'renamed-live' })).status, 200);
      await eventAfter(
        stream,
        from,
        'rename',
        isDevice(live.uuid, (d) => d.name === 'renamed-live'),
        since,
        latencies,
      );

      from = stream.events.length;
      since = performance.now();
      await live.api('POST', `/api/v1/devices/${live.uuid}/tags`, { key: 'room', value: 'lab' });
      await eventAfter(
        stream,
        from,
        'tag',
        isDevice(live.uuid, () => true),
        since,
        latencies,
      );

      from = stream.events.length;
      since = performance.now();
      const release = await live.api('POST', `/api/v1/fleets/${live.slug}/releases`, {
        composition: { services: { main: { image: 'busybox' } } },
        images: { main: 'registry.example/busybox@sha256:'.padEnd(96, 'a') },
        status: 'success',
      });
      assert.equal(release.status, 201, JSON.stringify(release.data));
      await eventAfter(
        stream,
        from,
        'new target release',
        (e) => e.type === 'fleet-changed' && e.data.targetRelease === release.data.commit,
        since,
        latencies,
      );
      const shown = await live.api('GET', `/api/v1/devices/${live.uuid}`);
      assert.equal(shown.data.targetRelease, release.data.commit, 'the refetch the event asks for shows it');
    });

    test('a deploy to a fleet of 500 devices is one fleet-changed event, not one per device', async () => {
      const slug = `big-${testDb.label}`;
      const fleet = await live.api('POST', '/api/v1/fleets', { name: slug, slug });
      await seedDevices(live.server.app.flotilla.db, fleet.data.id, 500);
      const big = follow(live.server.url, slug, live.apiKey);
      try {
        await big.ready;
        const since = performance.now();
        const release = await live.api('POST', `/api/v1/fleets/${slug}/releases`, {
          composition: { services: { main: { image: 'busybox' } } },
          images: { main: 'registry.example/busybox@sha256:'.padEnd(96, 'c') },
          status: 'success',
        });
        assert.equal(release.status, 201, JSON.stringify(release.data));
        await eventAfter(
          big,
          0,
          'deploy to 500',
          (e) => e.type === 'fleet-changed' && e.data.targetRelease === release.data.commit,
          since,
          latencies,
        );
        // Two more rounds' time for any per-device event to show up: none may.
        await new Promise((resolve) => setTimeout(resolve, 600));
        assert.deepEqual(
          big.events.map((e) => e.type),
          ['fleet-changed'],
        );
      } finally {
        big.close();
      }
    });

    test('a burst of 40 reports makes a few events, the last with the last state', async () => {
      const from = stream.events.length;
      const started = performance.now();
      for (let i = 0; i < 40; i++) await report(live.server.url, live.uuid, live.deviceKey, { cpu_usage: i });
      const took = performance.now() - started;
      await waitFor(
        'the last report',
        () =>
          stream.events
            .slice(from)
            .some(isDevice(live.uuid, (d) => (d.metrics as { cpuUsage: number }).cpuUsage === 39)),
        { timeoutMs: DEADLINE_MS },
      );
      const burst = stream.events.slice(from).filter((e) => e.data.uuid === live.uuid);
      // At most one event per 250 ms round, plus the round under way when the burst began and the one after it.
      const bound = Math.ceil(took / 250) + 2;
      assert.ok(burst.length <= bound, `${burst.length} events for 40 reports in ${took.toFixed(0)} ms`);
      console.log(`# burst of 40 reports in ${took.toFixed(0)} ms → ${burst.length} events (${testDb.label})`);
    });

    test('a device whose last sign of life leaves the online window is announced offline', async () => {
      const { db } = live.server.app.flotilla;
      // Seen long enough ago that it goes offline one second from now; no write happens when it does.
      const crossesAt = Date.now() + 1_000;
      const since = performance.now() + 1_000;
      await db
        .updateTable('devices')
        .set({ last_seen_at: new Date(crossesAt - ONLINE_WINDOW_MS).toISOString() })
        .where('uuid', '=', live.uuid)
        .execute();
      const from = stream.events.length;
      await eventAfter(
        stream,
        from,
        'offline',
        isDevice(live.uuid, (d) => d.isOnline === false),
        since,
        latencies,
      );
      assert.ok(Date.now() >= crossesAt, 'not announced before it happened');
    });

    test('moving a device away and deleting one: device-removed', async () => {
      const other = await live.api('POST', '/api/v1/fleets', { name: 'elsewhere', slug: `elsewhere-${testDb.label}` });
      let from = stream.events.length;
      let since = performance.now();
      await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { fleet: other.data.slug });
      await eventAfter(
        stream,
        from,
        'moved away',
        (e) => e.type === 'device-removed' && e.data.uuid === live.uuid,
        since,
        latencies,
      );
      await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { fleet: live.slug });
      await waitFor('moved back', () => stream.events.slice(from).some(isDevice(live.uuid, () => true)), {
        timeoutMs: DEADLINE_MS,
      });
      from = stream.events.length;
      since = performance.now();
      assert.equal((await live.api('DELETE', `/api/v1/devices/${live.uuid}`)).status, 204);
      const removed = await eventAfter(stream, from, 'deleted', (e) => e.type === 'device-removed', since, latencies);
      assert.deepEqual(removed.data, { uuid: live.uuid });
      assert.ok(
        !stream.events.slice(stream.events.indexOf(removed)).some((e) => e.type === 'device'),
        'nothing of the device after its removal',
      );
    });

    test('the stream of a key that is revoked ends; another fleet’s stream is refused', async () => {
      const key = await live.api('POST', '/api/v1/api-keys', { name: 'watcher' });
      const watcher = follow(live.server.url, live.slug, key.data.key);
      await watcher.ready;
      const since = performance.now();
      assert.equal((await live.api('DELETE', `/api/v1/api-keys/${key.data.id}`)).status, 204);
      await waitFor('the revoked stream to end', () => watcher.ended.then(() => true), { timeoutMs: DEADLINE_MS });
      latencies['revoked → closed'] = Math.round(performance.now() - since);
      const refused = await apiCall(live.server.url, 'GET', '/api/v1/fleets/no-such-fleet/events', live.apiKey);
      assert.equal(refused.status, 404);
    });
  });
}

const postgres = testDatabases().find((d) => d.dialect === 'postgres');
if (postgres)
  describe('fleet events across two server nodes (postgres)', () => {
    let live: LiveDevice;
    let other: RunningServer;
    before(async () => {
      live = await liveServerWithDevice(postgres);
      other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl! });
    });
    after(async () => {
      await other.close();
      await live.close();
    });

    test('writes on node B reach a follower on node A within 2 s', async () => {
      const stream = follow(live.server.url, live.slug, live.apiKey);
      const counts = readEventStream(`${live.server.url}/api/v1/fleet-counts/events`, {
        authorization: `Bearer ${live.apiKey}`,
      });
      await Promise.all([stream.ready, counts.ready]);
      // The figures as they were before the report, so the ones after it came through the bus.
      await waitFor('the first counts', () => counts.events.length > 0, { timeoutMs: DEADLINE_MS });
      assert.equal(counts.events[0]?.data.failed, 0);
      const latencies: Record<string, number> = {};
      const b = other.url;
      try {
        let from = stream.events.length;
        let since = performance.now();
        await report(b, live.uuid, live.deviceKey, { status: 'Update failed' });
        await eventAfter(
          stream,
          from,
          'report on B',
          (e) => e.type === 'device' && e.data.status === 'Update failed',
          since,
          latencies,
        );
        await eventAfter(
          counts,
          1,
          'counts after a report on B',
          (e) => e.type === 'counts' && e.data.fleet === live.slug && e.data.failed === 1,
          since,
          latencies,
        );

        from = stream.events.length;
        since = performance.now();
        await apiCall(b, 'PATCH', `/api/v1/devices/${live.uuid}`, live.apiKey, { name: 'renamed-on-b' });
        await eventAfter(
          stream,
          from,
          'rename on B',
          (e) => e.type === 'device' && e.data.name === 'renamed-on-b',
          since,
          latencies,
        );

        from = stream.events.length;
        since = performance.now();
        const release = await apiCall(b, 'POST', `/api/v1/fleets/${live.slug}/releases`, live.apiKey, {
          composition: { services: { main: { image: 'busybox' } } },
          images: { main: 'registry.example/busybox@sha256:'.padEnd(96, 'b') },
          status: 'success',
        });
        await eventAfter(
          stream,
          from,
          'release on B',
          (e) => e.type === 'fleet-changed' && e.data.targetRelease === release.data.commit,
          since,
          latencies,
        );

        from = stream.events.length;
        since = performance.now();
        await apiCall(b, 'DELETE', `/api/v1/devices/${live.uuid}`, live.apiKey);
        await eventAfter(
          stream,
          from,
          'delete on B',
          (e) => e.type === 'device-removed' && e.data.uuid === live.uuid,
          since,
          latencies,
        );
        console.log(`# fleet event latency, write on B, follower on A: ${JSON.stringify(latencies)}`);
      } finally {
        stream.close();
        counts.close();
      }
    });
  });
