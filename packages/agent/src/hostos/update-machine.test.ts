import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  IDLE,
  MAX_WRITE_ATTEMPTS,
  MAX_WRITE_RESTARTS,
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
const failed = (message: string): UpdateEvent => ({ type: 'refused', reason: { code: 'OS_IMAGE_INVALID', message } });
const restart: UpdateEvent = { type: 'boot-old' };
const times = <T>(n: number, x: T): T[] => Array.from({ length: n }, () => x);
/** [phase, attempts, restarts, reason code] */
const counts = (s: UpdateState) => [s.phase, s.attempts, s.restarts, s.reason?.code ?? null];

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
      name: 'power cut while writing: the same write goes on, no attempt used up',
      events: [start, restart, restart, { type: 'written' }],
      phases: ['writing', 'writing', 'writing', 'verifying'],
      check: (s) => assert.deepEqual(counts(s), ['verifying', 1, 2, null]),
    },
    {
      name: 'a failed write begins the next attempt, the last one fails the update with its reason',
      events: [start, failed('digest 1'), failed('digest 2'), failed('digest 3')],
      phases: ['writing', 'writing', 'writing', 'failed'],
      check: (s) => {
        assert.equal(MAX_WRITE_ATTEMPTS, 3);
        assert.deepEqual(counts(s), ['failed', 3, 0, 'OS_IMAGE_INVALID']);
        assert.equal(s.reason?.message, 'digest 3');
      },
    },
    {
      name: 'restarts between failed writes use up none of the attempts',
      events: [start, failed('1'), restart, restart, failed('2'), restart, { type: 'written' }],
      phases: ['writing', 'writing', 'writing', 'writing', 'writing', 'writing', 'verifying'],
      check: (s) => assert.deepEqual(counts(s), ['verifying', 3, 3, null]),
    },
    {
      name: 'a rollback after a write that failed once says why the trial failed, not why that write did',
      events: [start, failed('cut'), { type: 'written' }, { type: 'verified' }, restart],
      phases: ['writing', 'writing', 'verifying', 'armed', 'rolled-back'],
      check: (s) => assert.deepEqual(counts(s), ['rolled-back', 2, 0, 'OS_TRIAL_BOOT_FAILED']),
    },
    {
      name: 'a read-back that fails is a failed write: written again, counted',
      events: [start, { type: 'written' }, failed('reads back as'), { type: 'written' }, { type: 'verified' }],
      phases: ['writing', 'verifying', 'writing', 'verifying', 'armed'],
      check: (s) => assert.deepEqual([s.attempts, s.restarts], [2, 0]),
    },
    {
      name: 'an image larger than the slot fails at once: no other write can mend it',
      events: [start, { type: 'refused', reason: { code: 'OS_IMAGE_TOO_LARGE', message: 'too large' } }],
      phases: ['writing', 'failed'],
      check: (s) => assert.deepEqual(counts(s), ['failed', 1, 0, 'OS_IMAGE_TOO_LARGE']),
    },
    {
      name: `the agent restarting mid-write: the ${MAX_WRITE_RESTARTS}th restart goes on, the next gives up`,
      events: [start, ...times(MAX_WRITE_RESTARTS, restart), restart],
      phases: ['writing', ...times(MAX_WRITE_RESTARTS, 'writing'), 'failed'],
      check: (s) => {
        assert.ok(MAX_WRITE_RESTARTS > MAX_WRITE_ATTEMPTS, 'restarts are routine: a larger budget');
        assert.deepEqual(counts(s), ['failed', 1, MAX_WRITE_RESTARTS + 1, 'OS_UPDATE_RETRIES_EXHAUSTED']);
      },
    },
    {
      name: 'restarts while verifying count as restarts too',
      events: [start, { type: 'written' }, ...times(MAX_WRITE_RESTARTS, restart), { type: 'written' }, restart],
      phases: ['writing', 'verifying', ...times(MAX_WRITE_RESTARTS, 'writing'), 'verifying', 'failed'],
      check: (s) => assert.equal(s.reason?.code, 'OS_UPDATE_RETRIES_EXHAUSTED'),
    },
    {
      name: 'a new start after a failure has its whole budgets again',
      events: [start, failed('1'), failed('2'), restart, failed('3'), start, restart],
      phases: ['writing', 'writing', 'writing', 'writing', 'failed', 'writing', 'writing'],
      check: (s) => assert.deepEqual(counts(s), ['writing', 1, 1, null]),
    },
    {
      name: 'a failure or a restart after the trial was armed is no write: refused, or a rollback',
      events: [start, { type: 'written' }, { type: 'verified' }, failed('late'), restart],
      phases: ['writing', 'verifying', 'armed', 'refused', 'rolled-back'],
      check: (s) => assert.deepEqual(counts(s), ['rolled-back', 1, 0, 'OS_TRIAL_BOOT_FAILED']),
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
      events: [start, ...times(MAX_WRITE_ATTEMPTS, { type: 'refused', reason: why } as UpdateEvent), start],
      phases: ['writing', ...times(MAX_WRITE_ATTEMPTS - 1, 'writing'), 'failed', 'writing'],
      check: (s) => assert.equal(s.reason, null),
    },
    {
      name: 'nothing boots the new slot while it is written, and a second start waits',
      events: [start, { type: 'boot-new' }, start, { type: 'healthy' }],
      phases: ['writing', 'refused', 'refused', 'refused'],
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
