import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { fleetWithDevice, harness, type Harness } from '../testing/harness.js';

/**
 * A Flotilla agent on an A/B host reports where its host OS update stands (`os_update`); the device view shows it as
 * `osUpdate`, a malformed one is refused whole, and a balena Supervisor's report (which never has it) leaves none.
 */
for (const testDb of testDatabases()) {
  describe(`host OS update in the device report (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('stored as reported, shown in the device view and list, cleared by null; a bad one refused', async () => {
      const key = h.adminKey;
      const d = await fleetWithDevice(h, key, 'os-update-a');
      const report = (body: Record<string, unknown>) =>
        h.call('PATCH', '/device/v3/state', d.deviceKey, { [d.uuid]: body });
      const view = async () => (await h.call('GET', `/api/v1/devices/${d.uuid}`, key)).data.osUpdate;
      assert.equal((await report({ status: 'Idle' })).statusCode, 200);
      assert.equal(await view(), null, 'nothing reported: none');

      const writing = { phase: 'writing', version: '6.1.0', progress: 42, error_code: null, error: null };
      assert.equal((await report({ os_update: writing })).statusCode, 200);
      assert.deepEqual(await view(), {
        phase: 'writing',
        version: '6.1.0',
        progress: 42,
        errorCode: null,
        error: null,
      });
      const back = {
        phase: 'rolled-back',
        version: '6.1.0',
        progress: null,
        error_code: 'OS_TRIAL_UNHEALTHY',
        error: 'engine: connect ENOENT /var/run/docker.sock',
      };
      assert.equal((await report({ os_update: back })).statusCode, 200);
      assert.equal((await report({ status: 'Idle' })).statusCode, 200);
      const shown = await view();
      assert.deepEqual([shown.phase, shown.errorCode], ['rolled-back', 'OS_TRIAL_UNHEALTHY'], 'kept across reports');
      const list = await h.call('GET', '/api/v1/devices?fleet=os-update-a', key);
      assert.equal(list.data.items[0].osUpdate.phase, 'rolled-back');

      for (const bad of [
        { ...writing, phase: 'flashing' },
        { ...writing, progress: 101 },
        { ...writing, version: 'x'.repeat(201) },
      ]) {
        const refused = await report({ os_update: bad });
        assert.equal(refused.statusCode, 400, refused.body);
      }
      assert.equal((await view()).phase, 'rolled-back', 'a refused report changes nothing');
      assert.equal((await report({ os_update: null })).statusCode, 200);
      assert.equal(await view(), null);
    });
  });
}
