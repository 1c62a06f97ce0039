import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { fleetWithDevice, harness } from '../testing/harness.js';
import { devicePartReader } from './device-part.js';
import { createPollLookup } from './poll-lookup.js';

/**
 * A first poll reads the device's part of its target state in the lookup's own statement (`withPart`); a poll whose
 * state is kept reads the lookup alone and, when the state must be computed again, the part by itself. The two
 * statements must agree, row for row, on both dialects.
 */
for (const testDb of testDatabases()) {
  test(`[${testDb.dialect}] the lookup with the device's part agrees with the lookup and the part read apart`, async () => {
    const h = await harness(testDb);
    try {
      const { uuid, deviceId, fleetId } = await fleetWithDevice(h, h.adminKey, 'poll-part');
      const { db } = h.database;
      const at = new Date().toISOString();
      const env = (name: string, value: string, service: string | null, device: number | null) =>
        db
          .insertInto('env_vars')
          .values({ fleet_id: fleetId, device_id: device, service, name, value, created_at: at })
          .execute();
      await env('ZED', 'last', null, deviceId);
      await env('ALPHA', 'first', 'web', deviceId);
      await env('FLEET_ONLY', 'not the device part', null, null);
      const config = { fleet_id: fleetId, device_id: deviceId, created_at: at };
      await db
        .insertInto('config_vars')
        .values({ ...config, key: 'SUPERVISOR_POLL_INTERVAL', name: 'BALENA_SUPERVISOR_POLL_INTERVAL', value: '60000' })
        .execute();
      await db
        .updateTable('devices')
        .set({ update_window_json: '{"start":"02:00","end":"04:00"}' })
        .where('id', '=', deviceId)
        .execute();

      const { lookup } = createPollLookup(h.database);
      const plain = await lookup(uuid);
      const withPart = await lookup(uuid, true);
      const part = await devicePartReader(h.database)(deviceId);
      assert.ok(plain && withPart && part);
      assert.deepEqual(withPart, { ...plain, part });
      assert.deepEqual(
        part.env.map((v) => [v.name, v.service]),
        [
          ['ZED', null],
          ['ALPHA', 'web'],
        ],
        'the device variables only, in the order they were made',
      );
      assert.deepEqual(part.config, [{ name: 'BALENA_SUPERVISOR_POLL_INTERVAL', value: '60000' }]);
      assert.equal(part.updateWindowJson, '{"start":"02:00","end":"04:00"}');
      assert.equal(await lookup('0'.repeat(32), true), undefined, 'no such device');
    } finally {
      await h.close();
    }
  });
}
