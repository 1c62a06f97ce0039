import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reportToPatch } from './report.js';

test('a reported rollback is stored as JSON, null clears it, a report without it keeps the stored one', () => {
  const rollback = {
    from_commit: 'b'.repeat(32),
    to_commit: 'a'.repeat(32),
    reason: 'service main is unhealthy by its healthcheck',
    service: 'main',
    logs: ['listening'],
    at: '2026-12-01T02:15:00.000Z',
  };
  const patch = reportToPatch({ update_failed: true, rollback });
  assert.deepEqual(JSON.parse(patch.rollback_json ?? 'null'), rollback);
  assert.equal(reportToPatch({ rollback: null }).rollback_json, null);
  assert.equal('rollback_json' in reportToPatch({ status: 'Idle' }), false);
});
