import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceState, deviceStateLabel } from './device-status.js';

test('a device is offline whatever it last reported, else its reported status decides', () => {
  const cases: [boolean, string | null, string, string][] = [
    [false, 'Updating', 'offline', 'Offline'],
    [false, null, 'offline', 'Offline'],
    [true, 'Idle', 'online', 'Idle'],
    [true, null, 'online', 'Online'],
    [true, 'Updating', 'updating', 'Updating'],
    [true, 'Update failed', 'failed', 'Update failed'],
  ];
  for (const [isOnline, status, state, label] of cases) {
    assert.equal(deviceState({ isOnline, status }), state, `${isOnline} ${status}`);
    assert.equal(deviceStateLabel({ isOnline, status }), label, `${isOnline} ${status}`);
  }
});
