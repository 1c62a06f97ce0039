import assert from 'node:assert/strict';
import { test } from 'node:test';
import { osUpdateText, rollbackDetails } from './device.js';

test('device info: a rollback says from what to what, why, what is refused until when, and the last lines', () => {
  assert.equal(rollbackDetails(null), '');
  assert.equal(
    rollbackDetails({
      fromCommit: 'bb3aaea091b43762ca7a1496f8b2df6b',
      toCommit: '8e7040dee55708f07acecb0183200cd0',
      reason: 'service main is crash-looping: restarted 3 times',
      service: 'main',
      logs: ['starting', 'fatal: no config'],
      at: '2026-12-01T02:15:00.000Z',
    }),
    [
      '',
      'rolled back from bb3aaea to 8e7040d at 2026-12-01T02:15:00.000Z (service main): service main is crash-looping: restarted 3 times',
      'refusing bb3aaea until a new release, a pin or a forced update (flotilla device update --force)',
      'last lines of main:',
      '  starting',
      '  fatal: no config',
      '',
    ].join('\n'),
  );
});

test('the host OS update in one line: none without one, its progress while writing, why it went back', () => {
  const u = { phase: 'writing' as const, version: '6.1.0', progress: 42, errorCode: null, error: null };
  assert.equal(osUpdateText(null), null);
  assert.equal(osUpdateText({ ...u, phase: 'idle', version: null, progress: null }), null);
  assert.equal(osUpdateText(u), '6.1.0 writing 42%');
  assert.equal(
    osUpdateText({ ...u, phase: 'rolled-back', progress: null, errorCode: 'OS_TRIAL_UNHEALTHY', error: 'engine down' }),
    '6.1.0 rolled-back: engine down (OS_TRIAL_UNHEALTHY)',
  );
});
