import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { connectDevice, fetchTargetEtag } from '../testing/clients.js';
import { startServer } from '../server.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';

const TRIALS = 12;
/** The latest offset after the connection opened; past the watcher's first tick (1 s). */
const LAST_OFFSET_MS = 1_500;
/** How long a change may take to be announced: the watcher's interval plus slack for a loaded machine. */
const ANNOUNCE_WITHIN_MS = 4_000;

/** How long the device stays away between trials: longer than one tick of the server's watcher. */
const AWAY_MS = 1_500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A successful release, so that variables reach the device's target state (they live in its services). */
async function release(live: LiveDevice): Promise<void> {
  const created = await live.api('POST', `/api/v1/fleets/${live.slug}/releases`, {
    composition: { services: { main: { build: '.' } } },
  });
  assert.equal(created.status, 201, JSON.stringify(created.data));
  const image = `flotilla.test:8080/${live.slug}/main@sha256:${'a'.repeat(64)}`;
  const done = await live.api('PATCH', `/api/v1/releases/${created.data.id}`, {
    images: { main: image },
    status: 'success',
  });
  assert.equal(done.status, 200, JSON.stringify(done.data));
}

/**
 * Reconnects the device to `deviceUrl` `TRIALS` times; each time a variable changes (written through `live`'s
 * node) at an offset from just before the connection opened to past the watcher's first tick, and the change must
 * be announced on that connection. The device's held ETag is always from before the change, so only an
 * announcement gets the change to it before its next poll.
 */
async function reconnectTrials(
  live: LiveDevice,
  deviceUrl: string,
): Promise<{ changes: number; announced: number; lost: number[] }> {
  const { uuid, deviceKey } = live;
  let changes = 0;
  let announced = 0;
  const lost: number[] = [];
  for (let trial = 0; trial < TRIALS; trial += 1) {
    // The agent fetches, then (re)connects saying what it holds; the change lands at `offset` ms after the
    // connection opened (a negative offset: while the connection is being made).
    const offset = Math.round(-100 + (trial * (LAST_OFFSET_MS + 100)) / (TRIALS - 1));
    const held = await fetchTargetEtag(deviceUrl, uuid, deviceKey);
    const device = connectDevice(deviceUrl, uuid, deviceKey, undefined, { etag: held });
    const change = async () => {
      // Fleet and device variables: both revision counters the server compares.
      const [route, name] =
        trial % 2 === 0
          ? [`/api/v1/fleets/${live.slug}/env`, 'FLEET_TRIAL']
          : [`/api/v1/devices/${uuid}/env`, 'DEVICE_TRIAL'];
      const answer = await live.api('POST', route, { name, value: String(trial) });
      assert.ok(answer.status < 300, `variable write: HTTP ${answer.status}`);
    };
    if (offset < 0) await Promise.all([device.opened, sleep(-offset).then(change)]);
    else {
      await device.opened;
      await sleep(offset);
      await change();
    }
    changes += 1;
    const current = await fetchTargetEtag(deviceUrl, uuid, deviceKey);
    assert.notEqual(current, held, `trial ${trial}: the change changed the target`);
    try {
      await waitFor('target-changed', () => device.announcements.includes('target-changed'), {
        timeoutMs: ANNOUNCE_WITHIN_MS,
      });
      announced += 1;
    } catch {
      lost.push(offset);
    }
    device.close();
    // Away for a while, as after a lost link (the agent's first retry comes after 1 s): the server notices.
    await sleep(AWAY_MS);
  }
  return { changes, announced, lost };
}

const postgres = testDatabases().find((d) => d.dialect === 'postgres');

test('[postgres] security: with two server nodes, a change made on one reaches a device reconnecting to the other', {
  skip: !postgres && 'no PostgreSQL',
}, async () => {
  const live = await liveServerWithDevice(postgres!);
  const other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl! });
  try {
    await release(live);
    const { changes, announced, lost } = await reconnectTrials(live, other.url);
    console.log(`security: reconnect: ${changes} changes, ${announced} announced (postgres, two nodes)`);
    assert.deepEqual(lost, [], 'changes at these offsets (ms after connecting) were never announced');
  } finally {
    await other.close();
    await live.close();
  }
});

for (const db of testDatabases()) {
  test(`[${db.label}] security: a change made at any moment around a device's reconnect is announced to it`, async () => {
    const live = await liveServerWithDevice(db);
    try {
      await release(live);
      const { changes, announced, lost } = await reconnectTrials(live, live.server.url);
      console.log(`security: reconnect: ${changes} changes, ${announced} announced (${db.label})`);
      assert.deepEqual(lost, [], 'changes at these offsets (ms after connecting) were never announced');
      assert.equal(announced, changes);
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] security: a reconnecting device is told at once about a change made while it was away, and only then`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, uuid, deviceKey } = live;
    try {
      await release(live);
      const held = await fetchTargetEtag(server.url, uuid, deviceKey);
      // Up to date: nothing to announce, before or after the watcher's first ticks.
      const current = connectDevice(server.url, uuid, deviceKey, undefined, { etag: held });
      await current.opened;
      await sleep(2_500);
      assert.deepEqual(current.announcements, [], 'no change, no announcement');
      current.close();
      // Changed while away: announced as the connection is attached (the watcher alone took it for the device's own).
      assert.ok((await live.api('POST', `/api/v1/fleets/${live.slug}/env`, { name: 'AWAY', value: '1' })).status < 300);
      const stale = connectDevice(server.url, uuid, deviceKey, undefined, { etag: held });
      await stale.opened;
      await waitFor('target-changed', () => stale.announcements.length > 0, { timeoutMs: 2_000 });
      assert.deepEqual(stale.announcements, ['target-changed']);
      stale.close();
      // An agent that says nothing (from before the etag parameter) may hold anything: it is told to fetch.
      const old = connectDevice(server.url, uuid, deviceKey);
      await old.opened;
      await waitFor('target-changed', () => old.announcements.length > 0, { timeoutMs: 2_000 });
      old.close();
      // An etag that is not one is refused before the upgrade, with a stable code.
      const bogus = connectDevice(server.url, uuid, deviceKey, undefined, { etag: 'x'.repeat(300) });
      await assert.rejects(bogus.opened, /400/);
      console.log(
        `security: reconnect: 4 connects, 1 up to date left quiet, 2 announced (stale, no etag), 1 refused (bad etag) (${db.label})`,
      );
    } finally {
      await live.close();
    }
  });
}
