import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { ONLINE_WINDOW_MS } from '../fleets/fleets.js';
import { readEventStream, type ServerEvent } from '../testing/clients.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';
import { seedDevices } from '../testing/seed-devices.js';

/** What the issue promises: a change is on screen within 2 s. */
const DEADLINE_MS = 2_000;

type Stream = ReturnType<typeof readEventStream>;

function followCounts(url: string, key: string): Stream {
  return readEventStream(`${url}/api/v1/fleet-counts/events`, { authorization: `Bearer ${key}` });
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
  describe(`device state "failed" and live fleet counts (${testDb.label})`, () => {
    let live: LiveDevice;
    let stream: Stream;
    const latencies: Record<string, number> = {};
    /** The latest counts of `slug` once they satisfy `match`, within the deadline; its latency from `since`. */
    const countsOf = async (
      slug: string,
      what: string,
      match: (c: Record<string, number>) => boolean,
      since = performance.now(),
    ) => {
      const event = await waitFor(
        what,
        () => {
          const last = stream.events.findLast((e: ServerEvent) => e.type === 'counts' && e.data.fleet === slug);
          return last && match(last.data) ? last : undefined;
        },
        { timeoutMs: DEADLINE_MS + 1_000, intervalMs: 10 },
      );
      const ms = Math.max(0, event.at - since);
      latencies[what] = Math.round(ms);
      assert.ok(ms < DEADLINE_MS, `${what} took ${ms.toFixed(0)} ms`);
      return event.data;
    };
    const listed = async (status: string) =>
      (await live.api('GET', `/api/v1/devices?fleet=${live.slug}&status=${status}`)).data.items.map(
        (d: { uuid: string }) => d.uuid,
      );

    before(async () => {
      live = await liveServerWithDevice(testDb);
      // 30 more devices, 10 of them online and idle: the counts are of the fleet, not of one device.
      const { db } = live.server.app.flotilla;
      const fleet = (await live.api('GET', `/api/v1/fleets/${live.slug}`)).data;
      await seedDevices(db, fleet.id, 30, (i) => ({
        last_seen_at: i < 10 ? new Date().toISOString() : null,
        status: i < 10 ? 'Idle' : null,
      }));
      stream = followCounts(live.server.url, live.apiKey);
      await stream.ready;
    });
    after(async () => {
      stream.close();
      console.log(`# fleet counts latency (${testDb.label}): ${JSON.stringify(latencies)}`);
      await live.close();
    });

    test('on open: every visible fleet with its counts', async () => {
      const counts = await countsOf(live.slug, 'first counts', () => true);
      assert.deepEqual(counts, { fleet: live.slug, total: 31, online: 10, offline: 21, updating: 0, failed: 0 });
    });

    test('an update that fails shows as failed (status or update_failed) and clears when one succeeds', async () => {
      let since = performance.now();
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Updating', update_failed: false });
      await countsOf(live.slug, 'updating', (c) => c.updating === 1 && c.online === 11, since);

      since = performance.now();
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Update failed', update_failed: true });
      await countsOf(live.slug, 'failed (agent)', (c) => c.failed === 1 && c.updating === 0, since);
      assert.deepEqual(await listed('failed'), [live.uuid]);
      assert.equal((await live.api('GET', `/api/v1/devices/${live.uuid}`)).data.updateFailed, true);

      // A report of only the status (the agent sends what changed) keeps the flag: still failed while it retries.
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Updating' });
      assert.deepEqual(await listed('failed'), [live.uuid]);
      assert.deepEqual(await listed('updating'), [], 'failed wins over updating');

      since = performance.now();
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Idle', update_failed: false });
      await countsOf(live.slug, 'failure cleared', (c) => c.failed === 0 && c.updating === 0, since);
      assert.equal((await live.api('GET', `/api/v1/devices/${live.uuid}`)).data.updateFailed, false);

      // The balena Supervisor's way: `Idle` with update_failed.
      await report(live.server.url, live.uuid, live.deviceKey, { status: 'Idle', update_failed: true });
      await countsOf(live.slug, 'failed (balena)', (c) => c.failed === 1);
      assert.deepEqual(await listed('failed'), [live.uuid]);
      await report(live.server.url, live.uuid, live.deviceKey, { update_failed: false });
      await countsOf(live.slug, 'balena failure cleared', (c) => c.failed === 0);
    });

    test('moving a device changes both fleets; going offline moves it to offline', async () => {
      const other = `other-${testDb.label}`;
      await live.api('POST', '/api/v1/fleets', { name: other, slug: other });
      // A fleet created after the stream opened is not in it: a new stream has it.
      const second = followCounts(live.server.url, live.apiKey);
      try {
        await second.ready;
        await waitFor('the new fleet counted', () =>
          second.events.find((e) => e.type === 'counts' && e.data.fleet === other && e.data.total === 0),
        );
        const since = performance.now();
        assert.equal((await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { fleet: other })).status, 200);
        await waitFor(
          'moved, counted in both',
          () => {
            const last = (slug: string) => second.events.findLast((e) => e.type === 'counts' && e.data.fleet === slug);
            return last(other)?.data.total === 1 && last(live.slug)?.data.total === 30;
          },
          { timeoutMs: DEADLINE_MS },
        );
        latencies.move = Math.round(performance.now() - since);
        await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { fleet: live.slug });
      } finally {
        second.close();
      }
      await countsOf(live.slug, 'moved back', (c) => c.total === 31 && c.online === 11);

      const { db } = live.server.app.flotilla;
      const crossesAt = Date.now() + 1_000;
      await db
        .updateTable('devices')
        .set({ last_seen_at: new Date(crossesAt - ONLINE_WINDOW_MS).toISOString() })
        .where('uuid', '=', live.uuid)
        .execute();
      await countsOf(live.slug, 'offline', (c) => c.online === 10 && c.offline === 21, performance.now() + 1_000);
    });

    test('a burst of reports moves the figures at most once a second, and only when they move', async () => {
      const before = stream.events.length;
      const started = performance.now();
      for (let i = 0; i < 30; i++) await report(live.server.url, live.uuid, live.deviceKey, { cpu_usage: i });
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const took = performance.now() - started;
      const burst = stream.events.slice(before).filter((e) => e.type === 'counts' && e.data.fleet === live.slug);
      // The device came back online with the first report: at most that change, and nothing for the metrics.
      assert.ok(burst.length <= 1, `${burst.length} counts events in ${took.toFixed(0)} ms`);
    });

    test('another organization sees none of these fleets; removing the membership ends the stream', async () => {
      for (const key of ['nonsense', live.deviceKey]) {
        const refused = await live.api('GET', '/api/v1/fleet-counts/events', undefined, key);
        assert.equal(refused.status, 401, JSON.stringify(refused.data));
      }
      const password = generateKey();
      const user = await live.api('POST', '/api/v1/users', { username: 'outsider', password });
      const token = (await live.api('POST', '/api/v1/auth/login', { username: 'outsider', password })).data.token;
      const outsider = followCounts(live.server.url, token);
      await outsider.ready;
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(outsider.events, [], 'no fleet of another organization');
      outsider.close();

      const org = (await live.api('GET', '/api/v1/whoami')).data.organizations[0].handle;
      await live.api('POST', `/api/v1/organizations/${org}/invitations`, { username: 'outsider', role: 'observer' });
      const [invitation] = (await live.api('GET', '/api/v1/invitations', undefined, token)).data.items;
      await live.api('POST', `/api/v1/invitations/${invitation.id}/accept`, {}, token);
      const member = followCounts(live.server.url, token);
      await member.ready;
      await waitFor('the observer sees the counts', () => member.events.some((e) => e.data.fleet === live.slug));
      const since = performance.now();
      assert.equal((await live.api('DELETE', `/api/v1/organizations/${org}/members/${user.data.id}`)).status, 204);
      await waitFor('the stream ends', () => member.ended.then(() => true), { timeoutMs: DEADLINE_MS });
      latencies['removed → closed'] = Math.round(performance.now() - since);
      assert.ok(user.status === 201);
    });
  });
}
