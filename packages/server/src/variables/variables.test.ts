import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { fleetWithDevice, harness } from '../testing/harness.js';

for (const testDb of testDatabases()) {
  describe(`variables (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('a delete takes one service, every scope of a name, or with exact=1 only the all-services one', async () => {
      const d = await fleetWithDevice(h, h.adminKey, 'vars');
      for (const base of ['/api/v1/fleets/vars/env', `/api/v1/devices/${d.uuid}/env`]) {
        const set = async (service?: string) => {
          const body = { name: 'GREETING', value: service ?? 'all', ...(service ? { service } : {}) };
          assert.equal((await h.call('POST', base, h.adminKey, body)).statusCode, 200);
        };
        const left = async () =>
          ((await h.call('GET', base, h.adminKey)).data.items as { service: string | null }[])
            .map((v) => v.service ?? '*')
            .sort();
        await set();
        await set('web');
        await set('db');
        assert.equal((await h.call('DELETE', `${base}/GREETING?exact=1`, h.adminKey)).statusCode, 204);
        assert.deepEqual(await left(), ['db', 'web']);
        const again = await h.call('DELETE', `${base}/GREETING?exact=1`, h.adminKey);
        assert.equal(again.data.error.code, 'VARIABLE_NOT_FOUND');
        assert.equal((await h.call('DELETE', `${base}/GREETING?service=web`, h.adminKey)).statusCode, 204);
        assert.deepEqual(await left(), ['db']);
        await set();
        assert.equal((await h.call('DELETE', `${base}/GREETING`, h.adminKey)).statusCode, 204);
        assert.deepEqual(await left(), []);
      }
    });
  });
}
