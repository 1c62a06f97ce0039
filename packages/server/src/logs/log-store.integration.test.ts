import assert from 'node:assert/strict';
import { it } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { databaseBefore } from '../testing/database-before.js';
import { LogStore, MAX_COMMIT_ROWS } from './log-store.js';

/**
 * The group commit of log posts (LogStore.store): posts that arrive together share a transaction, yet each gets the
 * ids of its own lines (what other server nodes read back by), every line is stored once and in order, and a post
 * that cannot be stored (its device deleted meanwhile) fails alone. A backlog larger than one commit takes is cut in
 * several commits (on PostgreSQL, several on their way at once) without a device's lines changing order. Pruning runs
 * in the background, after the posts are answered. On both databases.
 */
for (const testDb of testDatabases()) {
  it(`concurrent log posts are committed together, each with its own ids (${testDb.label})`, async () => {
    const created = await databaseBefore(testDb, '9999', async (db, fleetId, at) => {
      for (const n of [1, 2, 3])
        await db
          .insertInto('devices')
          .values({ uuid: String(n).repeat(32), fleet_id: fleetId, name: `d${n}`, device_type: 'x', created_at: at })
          .execute();
    });
    const opened = await openDatabase(created.options);
    try {
      const { db } = opened;
      const devices = (await db.selectFrom('devices').select('id').orderBy('id').execute()).map((d) => d.id);
      const store = new LogStore(opened, { retention: 10_000 });
      const noNames = async () => new Map<number, string>();
      const posts = Array.from({ length: 90 }, (_, i) => ({
        deviceId: devices[i % 3]!,
        messages: Array.from({ length: 1 + (i % 7) }, (_, j) => `post ${i} line ${j}`),
      }));
      const results = await Promise.all(
        posts.map((p) =>
          store.append(
            p.deviceId,
            p.messages.map((message, j) => ({ message, timestamp: j })),
            noNames,
          ),
        ),
      );
      for (const [i, post] of posts.entries()) {
        const { firstId, lastId } = results[i]!;
        const read = await store.range(post.deviceId, firstId - 1, lastId);
        assert.deepEqual(
          read.map((e) => e.message),
          post.messages,
          `post ${i}: its id range holds exactly its lines`,
        );
      }
      for (const deviceId of devices)
        assert.deepEqual(
          (await store.tail(deviceId, 10_000)).map((e) => e.message),
          posts.filter((p) => p.deviceId === deviceId).flatMap((p) => p.messages),
          'every line stored once, in the order posted',
        );

      // A backlog of several commits' worth, posted at once.
      const big = Array.from({ length: 40 }, (_, i) => ({
        deviceId: devices[i % 3]!,
        messages: Array.from({ length: 70 }, (_, j) => `big ${i} line ${j}`),
      }));
      assert.ok(big.length * 70 > 2 * MAX_COMMIT_ROWS, 'more than two commits take');
      const bigResults = await Promise.all(
        big.map((p) =>
          store.append(
            p.deviceId,
            p.messages.map((message, j) => ({ message, timestamp: j })),
            noNames,
          ),
        ),
      );
      for (const [i, post] of big.entries()) {
        const { firstId, lastId } = bigResults[i]!;
        assert.deepEqual(
          (await store.range(post.deviceId, firstId - 1, lastId)).map((e) => e.message),
          post.messages,
          `big post ${i}: its id range holds exactly its lines`,
        );
      }
      for (const deviceId of devices)
        assert.deepEqual(
          (await store.tail(deviceId, 10_000)).map((e) => e.message),
          [...posts, ...big].filter((p) => p.deviceId === deviceId).flatMap((p) => p.messages),
          'a backlog is stored in the order posted, across commits',
        );

      // A device deleted while its post waits for the commit: that post fails, the others in its commit do not.
      await db.deleteFrom('devices').where('id', '=', devices[2]!).execute();
      const line = (message: string) => [{ message, timestamp: 1 }];
      const [first, gone, third] = await Promise.allSettled([
        store.append(devices[0]!, line('kept a'), noNames),
        store.append(devices[2]!, line('lost'), noNames),
        store.append(devices[1]!, line('kept b'), noNames),
      ]);
      assert.equal(gone?.status, 'rejected');
      for (const [settled, deviceId, message] of [
        [first, devices[0]!, 'kept a'],
        [third, devices[1]!, 'kept b'],
      ] as const) {
        assert.equal(settled?.status, 'fulfilled');
        const { firstId, lastId } = (settled as PromiseFulfilledResult<{ firstId: number; lastId: number }>).value;
        assert.deepEqual(
          (await store.range(deviceId, firstId - 1, lastId)).map((e) => e.message),
          [message],
        );
      }
    } finally {
      await opened.close();
      await created.remove();
    }
  });
}

for (const testDb of testDatabases()) {
  it(`pruning keeps the newest lines, in the background (${testDb.label})`, async () => {
    const created = await databaseBefore(testDb, '9999', async (db, fleetId, at) => {
      await db
        .insertInto('devices')
        .values({ uuid: '1'.repeat(32), fleet_id: fleetId, name: 'd1', device_type: 'x', created_at: at })
        .execute();
    });
    const opened = await openDatabase(created.options);
    try {
      const { db } = opened;
      const { id } = await db.selectFrom('devices').select('id').executeTakeFirstOrThrow();
      const store = new LogStore(opened, { retention: 20 });
      const count = async () =>
        Number(
          (
            await db
              .selectFrom('device_logs')
              .where('device_id', '=', id)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      const noNames = async () => new Map<number, string>();
      // 32 lines one by one: a prune is due every 2 lines (a tenth of 20), the last after the 32nd.
      for (let i = 0; i < 32; i++) await store.append(id, [{ message: `m${i}`, timestamp: i }], noNames);
      await store.pruned();
      assert.equal(await count(), 20, 'only the newest 20 left once the pruner is done');
      assert.deepEqual(
        (await store.tail(id, 100)).map((e) => e.message),
        Array.from({ length: 20 }, (_, i) => `m${i + 12}`),
      );
      // A prune due while the store closes: close waits for the one under way, and none starts after.
      await store.append(
        id,
        [
          { message: 'x', timestamp: 1 },
          { message: 'y', timestamp: 2 },
        ],
        noNames,
      );
      await store.close();
      await store.pruned();
      assert.ok((await count()) <= 22);
    } finally {
      await opened.close();
      await created.remove();
    }
  });
}
