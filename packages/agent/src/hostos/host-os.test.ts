import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { osUpdateReport } from './host-os.js';
import { IDLE, transition, type UpdateEvent, type UpdateState } from './update-machine.js';

const target = { version: '2.0.0', url: 'file:///os.img', sha256: 'a'.repeat(64), size: 1 << 20 };
const cut = { code: 'NETWORK_ERROR', message: 'connection reset' } as const;

function after(events: UpdateEvent[]): UpdateState {
  let state = IDLE;
  for (const event of events) {
    const next = transition(state, event);
    assert.ok(next.ok, `${event.type} in ${state.phase}`);
    state = next.state;
  }
  return state;
}

describe('the device report of a host OS update', () => {
  const start: UpdateEvent = { type: 'start', target, booted: 'a' };
  const failed: UpdateEvent = { type: 'refused', reason: cut };
  const cases: Array<[string, UpdateEvent[], [string, string | null]]> = [
    ['writing', [start], ['writing', null]],
    // The server counts a device failed on `failed` or `rolled-back` only; a write tried again is still under way.
    ['writing again after a failed write: no error yet', [start, failed], ['writing', null]],
    ['failed after the last attempt: its reason', [start, failed, failed, failed], ['failed', 'NETWORK_ERROR']],
    ['a restart mid-write: no error', [start, { type: 'boot-old' }], ['writing', null]],
  ];
  for (const [label, events, [phase, code]] of cases)
    it(label, () => {
      const report = osUpdateReport(after(events));
      assert.deepEqual([report.phase, report.error_code], [phase, code]);
      assert.equal(report.error === null, code === null);
    });
});
