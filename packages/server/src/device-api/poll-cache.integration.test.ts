import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { startServer } from '../server.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';

/** One target-state poll as a device makes it: status and ETag. */
async function poll(baseUrl: string, live: Pick<LiveDevice, 'uuid' | 'deviceKey'>, key = live.deviceKey) {
  const response = await fetch(`${baseUrl}/device/v3/${live.uuid}/state`, {
    headers: { authorization: `Bearer ${key}` },
  });
  await response.arrayBuffer();
  return { status: response.status, etag: response.headers.get('etag') };
}

for (const testDb of testDatabases()) {
  test(`[${testDb.dialect}] a steady poll is answered from memory, and a change or a revocation is seen at its next poll`, async () => {
    const live = await liveServerWithDevice(testDb);
    const base = live.server.url;
    try {
      const first = await poll(base, live);
      assert.equal(first.status, 200);
      assert.equal((await poll(base, live)).etag, first.etag);

      // A rename bumps the device's revision: the next poll has the new target, not a kept one.
      const set = await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { name: 'renamed' });
      assert.ok(set.status < 300, JSON.stringify(set.data));
      const changed = async () => (await poll(base, live)).etag !== first.etag;
      if (testDb.dialect === 'sqlite') assert.ok(await changed(), 'SQLite: told within the write itself');
      else await waitFor('the new target on the next poll', changed, { timeoutMs: 2_000 });

      // The device is deleted: its key stops working at once (PostgreSQL: as soon as the notice comes back).
      const deleted = await live.api('DELETE', `/api/v1/devices/${live.uuid}`);
      assert.ok(deleted.status < 300, JSON.stringify(deleted.data));
      const refused = async () => (await poll(base, live)).status === 401;
      if (testDb.dialect === 'sqlite') assert.ok(await refused(), 'SQLite: refused at the very next poll');
      else await waitFor('the deleted device refused', refused, { timeoutMs: 1_000 });
    } finally {
      await live.close();
    }
  });
}

const postgres = testDatabases().find((d) => d.dialect === 'postgres');

/** Runs `sql` on the test database from outside any server, as another program would write it. */
async function run(databaseUrl: string, text: string, values: unknown[] = []): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(text, values);
  } finally {
    await client.end();
  }
}

test('[postgres] two nodes: a key changed through one is refused by the other; a notice lost with the bus is not trusted', {
  skip: !postgres && 'no PostgreSQL',
}, async () => {
  const live = await liveServerWithDevice(postgres!);
  const other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl! });
  const databaseUrl = live.databaseUrl!;
  try {
    const first = await poll(other.url, live);
    assert.equal(first.status, 200);
    assert.equal((await poll(other.url, live)).status, 200, 'kept by the other node');

    // The key changes in the database (whichever node or program wrote it): the other node stops taking the old one.
    await run(databaseUrl, `update devices set key_hash = reverse(key_hash) where uuid = $1`, [live.uuid]);
    const started = performance.now();
    await waitFor('the old key refused on the other node', async () => (await poll(other.url, live)).status === 401, {
      timeoutMs: 1_000,
    });
    console.log(`# a changed key refused by another node after ${(performance.now() - started).toFixed(0)} ms`);
    await run(databaseUrl, `update devices set key_hash = reverse(key_hash) where uuid = $1`, [live.uuid]);
    await waitFor('the device let in again', async () => (await poll(other.url, live)).status === 200);
    const held = await poll(other.url, live);

    // Every node's bus connection is cut, and the target changes before they listen again: its notice is lost
    // to them. The other node must not keep answering what it kept before the cut.
    const where = "application_name = 'flotilla-bus' and datname = current_database() and pid <> pg_backend_pid()";
    await run(
      databaseUrl,
      `select pg_terminate_backend(pid) from pg_stat_activity where ${where};
       update devices set name = 'renamed-silently', revision = revision + 1 where uuid = '${live.uuid}'`,
    );
    await waitFor(
      'the new target served by the other node',
      async () => (await poll(other.url, live)).etag !== held.etag,
      {
        timeoutMs: 3_000,
      },
    );
  } finally {
    await other.close();
    await live.close();
  }
});
