import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deviceState, deviceStateLabel } from './device-status.js';

test('a device is offline whatever it last reported, else its report decides, failed before updating', () => {
  const cases: [boolean, string | null, boolean, string, string][] = [
    [false, 'Updating', false, 'offline', 'Offline'],
    [false, null, true, 'offline', 'Offline'],
    [true, 'Idle', false, 'online', 'Idle'],
    [true, null, false, 'online', 'Online'],
    [true, 'Updating', false, 'updating', 'Updating'],
    [true, 'Downloading', false, 'updating', 'Downloading'],
    [true, 'applying changes', false, 'updating', 'applying changes'],
    // Downloaded, waiting for its maintenance window: its update is pending.
    [true, 'Waiting for update window', false, 'updating', 'Waiting for update window'],
    [true, 'Update failed', false, 'failed', 'Update failed'],
    [true, 'Update failed', true, 'failed', 'Update failed'],
    // The balena Supervisor's way: the flag, beside a status that says something else.
    [true, 'Idle', true, 'failed', 'Update failed'],
    [true, 'Updating', true, 'failed', 'Update failed'],
  ];
  for (const [isOnline, status, updateFailed, state, label] of cases) {
    const device = { isOnline, status, updateFailed };
    assert.equal(deviceState(device), state, JSON.stringify(device));
    assert.equal(deviceStateLabel(device), label, JSON.stringify(device));
  }
});
