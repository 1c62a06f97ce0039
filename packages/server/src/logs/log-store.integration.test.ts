import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { openDatabase } from '../db/database.js';
import { databaseBefore } from '../testing/database-before.js';
import { LogStore, chunkRows } from './log-store.js';

describe('chunkRows', () => {
  const cases: Array<[number, number[]]> = [
    [0, []],
    [1, [1]],
    [3, [2, 1]],
    [512, [512]],
    [1000, [512, 256, 128, 64, 32, 8]],
    [1537, [512, 512, 512, 1]],
  ];
  for (const [rows, sizes] of cases)
    it(`${rows} rows → ${JSON.stringify(sizes)}`, () => {
      const chunks = chunkRows(Array.from({ length: rows }, (_, i) => i));
      assert.deepEqual(
        chunks.map((c) => c.length),
        sizes,
      );
      assert.deepEqual(
        chunks.flat(),
        Array.from({ length: rows }, (_, i) => i),
        'every row once, in order',
      );
    });
});

/**
 * The group commit of log posts (LogStore.store): posts that arrive together share a transaction, yet each gets the
 * ids of its own lines (what other server nodes read back by), every line is stored once and in order, and a post
 * that cannot be stored (its device deleted meanwhile) fails alone. On both databases.
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
      const store = new LogStore(db, 10_000);
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
