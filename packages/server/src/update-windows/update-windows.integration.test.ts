import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { targetStateSchema } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { fleetWithDevice, harness, type Harness } from '../testing/harness.js';

/**
 * Maintenance windows through the user API and the device API, on both dialects: a fleet's window reaches its
 * devices' target state, a device's own replaces it and can be cleared, bad windows are refused with
 * UPDATE_WINDOW_INVALID, and what the device reports about its wait shows in the device view.
 */

const NIGHTLY = { cron: '0 2 * * *', durationSeconds: 7200, timezone: 'Europe/Paris' };
const WEEKEND = { cron: '30 1 * * 6,0', durationSeconds: 3600, timezone: 'America/New_York' };

for (const testDb of testDatabases()) {
  describe(`update windows (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('a fleet window reaches the target state; a device window replaces it until cleared', async () => {
      const key = h.adminKey;
      const d = await fleetWithDevice(h, key, 'windows-a');
      const target = async () => {
        const answer = await h.call('GET', `/device/v3/${d.uuid}/state`, d.deviceKey);
        assert.equal(answer.statusCode, 200, answer.body);
        return { device: targetStateSchema.parse(answer.data)[d.uuid], etag: answer.headers.etag };
      };
      const before = await target();
      assert.equal(before.device?.update_window, undefined, 'no window, no field');
      assert.equal((await h.call('GET', '/api/v1/fleets/windows-a', key)).data.updateWindow, null);

      const set = await h.call('PUT', '/api/v1/fleets/windows-a/update-window', key, NIGHTLY);
      assert.equal(set.statusCode, 200, set.body);
      assert.deepEqual(set.data.updateWindow, NIGHTLY);
      const withFleet = await target();
      assert.deepEqual(withFleet.device?.update_window, NIGHTLY);
      assert.notEqual(withFleet.etag, before.etag, 'the window changes the ETag');
      const device = await h.call('GET', `/api/v1/devices/${d.uuid}`, key);
      assert.deepEqual(device.data.updateWindow, { ...NIGHTLY, source: 'fleet' });

      const own = await h.call('PUT', `/api/v1/devices/${d.uuid}/update-window`, key, WEEKEND);
      assert.equal(own.statusCode, 200, own.body);
      assert.deepEqual(own.data.updateWindow, { ...WEEKEND, source: 'device' });
      assert.deepEqual((await target()).device?.update_window, WEEKEND);

      assert.equal((await h.call('DELETE', `/api/v1/devices/${d.uuid}/update-window`, key)).statusCode, 204);
      assert.deepEqual((await target()).device?.update_window, NIGHTLY, 'back to the fleet window');
      assert.equal((await h.call('DELETE', '/api/v1/fleets/windows-a/update-window', key)).statusCode, 204);
      const cleared = await target();
      assert.equal(cleared.device?.update_window, undefined);
      assert.equal(cleared.etag, before.etag, 'no window: the very target it had before');
      assert.equal((await h.call('GET', `/api/v1/devices/${d.uuid}`, key)).data.updateWindow, null);
    });

    test('bad windows are refused with a stable code and change nothing', async () => {
      const key = h.adminKey;
      const d = await fleetWithDevice(h, key, 'windows-b');
      const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
        ['four fields', { ...NIGHTLY, cron: '0 2 * *' }, 'UPDATE_WINDOW_INVALID', /invalid cron expression/],
        ['minute 61', { ...NIGHTLY, cron: '61 2 * * *' }, 'UPDATE_WINDOW_INVALID', /minute/],
        ['unknown zone', { ...NIGHTLY, timezone: 'Mars/Olympus' }, 'UPDATE_WINDOW_INVALID', /unknown time zone/],
        ['never occurs', { ...NIGHTLY, cron: '0 0 30 2 *' }, 'UPDATE_WINDOW_INVALID', /never occurs/],
        ['too short', { ...NIGHTLY, durationSeconds: 10 }, 'VALIDATION_FAILED', /./],
        ['unknown field', { ...NIGHTLY, start: 'now' }, 'VALIDATION_FAILED', /./],
      ];
      for (const [label, body, code, message] of cases) {
        for (const path of ['/api/v1/fleets/windows-b/update-window', `/api/v1/devices/${d.uuid}/update-window`]) {
          const answer = await h.call('PUT', path, key, body);
          assert.equal(answer.statusCode, 400, `${label} ${path}: ${answer.body}`);
          assert.equal(answer.data.error.code, code, label);
          assert.match(answer.data.error.message, message, label);
        }
      }
      assert.equal((await h.call('GET', '/api/v1/fleets/windows-b', key)).data.updateWindow, null);
      assert.equal((await h.call('GET', `/api/v1/devices/${d.uuid}`, key)).data.updateWindow, null);
    });

    test("the device's reported wait shows in the device view, and clears", async () => {
      const key = h.adminKey;
      const d = await fleetWithDevice(h, key, 'windows-c');
      const report = (body: Record<string, unknown>) =>
        h.call('PATCH', '/device/v3/state', d.deviceKey, { [d.uuid]: body });
      assert.equal((await report({ update_window_opens_at: '2026-12-02T01:00:00.000Z' })).statusCode, 200);
      const waiting = await h.call('GET', `/api/v1/devices/${d.uuid}`, key);
      assert.equal(waiting.data.updateWindowOpensAt, '2026-12-02T01:00:00.000Z');
      await report({ update_window_opens_at: 'not a time' });
      assert.equal((await h.call('GET', `/api/v1/devices/${d.uuid}`, key)).data.updateWindowOpensAt, null);
      await report({ update_window_opens_at: '2026-12-02T01:00:00Z' });
      await report({ update_window_opens_at: null });
      assert.equal((await h.call('GET', `/api/v1/devices/${d.uuid}`, key)).data.updateWindowOpensAt, null);
      // The device list shows it too (the same view).
      await report({ update_window_opens_at: '2026-12-02T01:00:00Z' });
      const list = await h.call('GET', '/api/v1/devices?fleet=windows-c', key);
      assert.equal(list.statusCode, 200, list.body);
      assert.equal(list.data.items[0].updateWindowOpensAt, '2026-12-02T01:00:00.000Z');
    });
  });
}
