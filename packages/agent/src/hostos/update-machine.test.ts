import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IDLE,
  UPDATE_TABLE,
  transition,
  type OsTarget,
  type UpdateEvent,
  type UpdatePhase,
  type UpdateState,
} from './update-machine.js';

const target: OsTarget = { version: '2.0.0', url: 'file:///os.img', sha256: 'a'.repeat(64), size: 8 << 20 };
const why = { code: 'OS_IMAGE_INVALID', message: 'bad' } as const;
const start: UpdateEvent = { type: 'start', target, booted: 'a' };

/** Runs `events` from IDLE; each step lists the phase reached, or 'refused' (the state is then kept). */
function chain(events: UpdateEvent[]): { phases: string[]; last: UpdateState } {
  let state = IDLE;
  const phases: string[] = [];
  for (const event of events) {
    const result = transition(state, event);
    phases.push(result.ok ? result.state.phase : 'refused');
    if (result.ok) state = result.state;
  }
  return { phases, last: state };
}

describe('host OS update transition table', () => {
  const cases: Array<{
    name: string;
    events: UpdateEvent[];
    phases: UpdatePhase[] | string[];
    check?: (s: UpdateState) => void;
  }> = [
    {
      name: 'update and commit',
      events: [start, { type: 'written' }, { type: 'verified' }, { type: 'boot-new' }, { type: 'healthy' }],
      phases: ['writing', 'verifying', 'armed', 'trial', 'committed'],
      check: (s) => assert.deepEqual([s.fromSlot, s.toSlot, s.attempts, s.reason], ['a', 'b', 1, null]),
    },
    {
      name: 'unhealthy trial: rolling back, then the old slot boots',
      events: [
        start,
        { type: 'written' },
        { type: 'verified' },
        { type: 'boot-new' },
        { type: 'unhealthy', reason: { code: 'OS_TRIAL_UNHEALTHY', message: 'engine' } },
        { type: 'boot-old' },
      ],
      phases: ['writing', 'verifying', 'armed', 'trial', 'rolling-back', 'rolled-back'],
      check: (s) => assert.equal(s.reason?.code, 'OS_TRIAL_UNHEALTHY'),
    },
    {
      name: 'the new OS never came up: the old slot boots while armed',
      events: [start, { type: 'written' }, { type: 'verified' }, { type: 'boot-old' }],
      phases: ['writing', 'verifying', 'armed', 'rolled-back'],
      check: (s) => assert.equal(s.reason?.code, 'OS_TRIAL_BOOT_FAILED'),
    },
    {
      name: 'crash during the trial checks on the new slot: checked again; a reboot lands on the old one',
      events: [
        start,
        { type: 'written' },
        { type: 'verified' },
        { type: 'boot-new' },
        { type: 'boot-new' },
        { type: 'boot-old' },
      ],
      phases: ['writing', 'verifying', 'armed', 'trial', 'trial', 'rolled-back'],
      check: (s) => assert.equal(s.reason?.code, 'OS_TRIAL_BOOT_FAILED'),
    },
    {
      name: 'power cut while writing: the write begins again, counted',
      events: [start, { type: 'boot-old' }, { type: 'boot-old' }, { type: 'written' }],
      phases: ['writing', 'writing', 'writing', 'verifying'],
      check: (s) => assert.equal(s.attempts, 3),
    },
    {
      name: 'power cut while verifying: written again',
      events: [start, { type: 'written' }, { type: 'boot-old' }],
      phases: ['writing', 'verifying', 'writing'],
    },
    {
      name: 'armed but not yet stored when the power went: the verified slot is on trial',
      events: [start, { type: 'written' }, { type: 'boot-new' }, { type: 'healthy' }],
      phases: ['writing', 'verifying', 'trial', 'committed'],
    },
    {
      name: 'a corrupt image is refused before anything is armed; a new start is accepted',
      events: [start, { type: 'refused', reason: why }, start],
      phases: ['writing', 'failed', 'writing'],
      check: (s) => assert.equal(s.reason, null),
    },
    {
      name: 'nothing boots the new slot while it is written, and a second start waits',
      events: [start, { type: 'boot-new' }, start, { type: 'healthy' }],
      phases: ['writing', 'refused', 'refused', 'refused'],
    },
    {
      name: 'given up after repeated cuts',
      events: [start, { type: 'give-up', reason: { code: 'OS_UPDATE_RETRIES_EXHAUSTED', message: '3' } }],
      phases: ['writing', 'failed'],
    },
    {
      name: 'rolling back, but the reboot did not happen: still rolling back',
      events: [
        start,
        { type: 'written' },
        { type: 'verified' },
        { type: 'boot-new' },
        { type: 'unhealthy', reason: why },
        { type: 'boot-new' },
      ],
      phases: ['writing', 'verifying', 'armed', 'trial', 'rolling-back', 'rolling-back'],
    },
    {
      name: 'a committed OS: restarts change nothing, the next update starts from its slot',
      events: [
        start,
        { type: 'written' },
        { type: 'verified' },
        { type: 'boot-new' },
        { type: 'healthy' },
        { type: 'boot-new' },
        { type: 'start', target, booted: 'b' },
      ],
      phases: ['writing', 'verifying', 'armed', 'trial', 'committed', 'committed', 'writing'],
      check: (s) => assert.deepEqual([s.fromSlot, s.toSlot], ['b', 'a']),
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const { phases, last } = chain(c.events);
      assert.deepEqual(phases, c.phases);
      c.check?.(last);
    });

  it('only a trial on the new slot commits', () => {
    for (const [phase, row] of Object.entries(UPDATE_TABLE))
      assert.equal(row.healthy === 'committed', phase === 'trial', `${phase} --healthy--> ${row.healthy}`);
  });
});
