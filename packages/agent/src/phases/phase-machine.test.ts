import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '@flotilla/testkit';
import { openStore, type Phase, type Store } from '../store/store.js';
import {
  CRASH_LOOP_CAP_MS,
  CRASH_LOOP_THRESHOLD,
  PHASE_EVENTS,
  PHASE_TABLE,
  PhaseMachine,
  crashLoopDelayMs,
  transition,
  type PhaseEvent,
} from './phase-machine.js';

/** In-memory store slice with the real store's contract: the phase defaults to 'provision', writes are counted. */
function memoryStore(phase?: Phase, interruptedApplies = 0) {
  const state = { phase, interruptedApplies, writes: 0 };
  const store: Pick<Store, 'getPhase' | 'setPhase' | 'getInterruptedApplies' | 'setInterruptedApplies'> = {
    getPhase: () => state.phase ?? 'provision',
    setPhase: (next) => {
      if (next === state.phase) return;
      state.phase = next;
      state.writes += 1;
    },
    getInterruptedApplies: () => state.interruptedApplies,
    setInterruptedApplies: (n) => {
      state.interruptedApplies = n;
    },
  };
  return { store, state };
}

// Each case: the phase the device starts in, the events in order, then the phase after each event ('refused' where
// the event is not allowed and the phase before it is kept).
const chains: Array<{ name: string; from: Phase; events: PhaseEvent[]; expect: Array<Phase | 'refused'> }> = [
  {
    name: 'new device registers, then applies its first release',
    from: 'provision',
    events: ['provision-needed', 'provisioned', 'work-planned', 'work-planned', 'pass-finished'],
    expect: ['provision', 'idle', 'apply', 'apply', 'idle'],
  },
  {
    name: 'provisioning retries stay in provision',
    from: 'provision',
    events: ['provision-needed', 'provision-needed', 'provisioned'],
    expect: ['provision', 'provision', 'idle'],
  },
  {
    name: 'unmanaged device: a converged pass alone makes it idle',
    from: 'provision',
    events: ['pass-finished'],
    expect: ['idle'],
  },
  {
    name: 'persisted target applied while provisioning still retries',
    from: 'provision',
    events: ['work-planned', 'provision-needed', 'pass-finished', 'provision-needed', 'provisioned'],
    expect: ['apply', 'refused', 'idle', 'provision', 'idle'],
  },
  {
    name: 'provisioned device restarts idle',
    from: 'idle',
    events: ['provisioned', 'pass-finished'],
    expect: ['idle', 'idle'],
  },
  {
    name: 'update found, applied, next pass converged',
    from: 'idle',
    events: ['work-planned', 'pass-finished', 'pass-finished'],
    expect: ['apply', 'idle', 'idle'],
  },
  {
    name: 'config.json replaced by an unregistered one',
    from: 'idle',
    events: ['provision-needed', 'provisioned'],
    expect: ['provision', 'idle'],
  },
  {
    name: 'resume after an interrupted apply: provisioning does not end the apply, the pass does',
    from: 'apply',
    events: ['provisioned', 'work-planned', 'pass-finished'],
    expect: ['apply', 'apply', 'idle'],
  },
  { name: 'resume finds nothing left to do', from: 'apply', events: ['pass-finished'], expect: ['idle'] },
  {
    name: 'apply is not overwritten by a provisioning retry',
    from: 'apply',
    events: ['provision-needed', 'pass-finished'],
    expect: ['refused', 'idle'],
  },
];

describe('phase transitions', () => {
  for (const c of chains) {
    it(c.name, () => {
      const { store } = memoryStore(c.from);
      const machine = new PhaseMachine(store);
      const seen = c.events.map((event) => {
        const before = machine.phase();
        const t = machine.send(event);
        if (!t.ok) {
          assert.equal(machine.phase(), before, `a refused ${event} keeps ${before}`);
          return 'refused';
        }
        return t.to;
      });
      assert.deepEqual(seen, c.expect);
    });
  }

  it('the table covers every phase × event, and transition() reads it without side effects', () => {
    const phases: Phase[] = ['provision', 'idle', 'apply'];
    assert.deepEqual(Object.keys(PHASE_TABLE).sort(), [...phases].sort());
    for (const phase of phases) {
      assert.deepEqual(Object.keys(PHASE_TABLE[phase]).sort(), [...PHASE_EVENTS].sort(), `events of ${phase}`);
      for (const event of PHASE_EVENTS) {
        const to = PHASE_TABLE[phase][event];
        assert.deepEqual(
          transition(phase, event),
          to === null ? { ok: false, from: phase, event } : { ok: true, from: phase, to },
        );
      }
    }
  });

  it("only 'pass-finished' leaves apply (a persisted apply means an update was cut short)", () => {
    for (const event of PHASE_EVENTS) {
      const t = transition('apply', event);
      assert.equal(t.ok && t.to !== 'apply', event === 'pass-finished', event);
    }
  });

  it('a repeated event writes nothing (the store is asked only for changes)', () => {
    const { store, state } = memoryStore('idle');
    const machine = new PhaseMachine(store);
    for (const event of ['pass-finished', 'provisioned', 'pass-finished'] as const) machine.send(event);
    assert.equal(state.writes, 0);
    machine.send('work-planned');
    machine.send('work-planned');
    assert.equal(state.writes, 1);
  });
});

describe('crash-loop detection', () => {
  it('backoff policy: nothing below the threshold, then 10 s doubling up to 30 min', () => {
    const cases: Array<[interrupted: number, ms: number]> = [
      [0, 0],
      [1, 0],
      [4, 0],
      [5, 10_000],
      [6, 20_000],
      [7, 40_000],
      [12, 1_280_000],
      [13, CRASH_LOOP_CAP_MS],
      [1_000, CRASH_LOOP_CAP_MS],
    ];
    for (const [n, ms] of cases) assert.equal(crashLoopDelayMs(n), ms, `after ${n} interrupted applies`);
    assert.equal(CRASH_LOOP_THRESHOLD, 5);
  });

  // Each case: the persisted phase and counter at start → what start() reports and what the counter becomes.
  const starts: Array<{
    name: string;
    phase: Phase | undefined;
    count: number;
    expect: { resumed: boolean; interruptedApplies: number; delayMs: number };
  }> = [
    { name: 'fresh device', phase: undefined, count: 0, expect: { resumed: false, interruptedApplies: 0, delayMs: 0 } },
    {
      name: 'clean stop while idle',
      phase: 'idle',
      count: 0,
      expect: { resumed: false, interruptedApplies: 0, delayMs: 0 },
    },
    {
      name: 'stale count with an idle phase is cleared',
      phase: 'idle',
      count: 7,
      expect: { resumed: false, interruptedApplies: 0, delayMs: 0 },
    },
    {
      name: 'first interruption',
      phase: 'apply',
      count: 0,
      expect: { resumed: true, interruptedApplies: 1, delayMs: 0 },
    },
    {
      name: 'fourth interruption: still no backoff',
      phase: 'apply',
      count: 3,
      expect: { resumed: true, interruptedApplies: 4, delayMs: 0 },
    },
    {
      name: 'fifth interruption: crash loop',
      phase: 'apply',
      count: 4,
      expect: { resumed: true, interruptedApplies: 5, delayMs: 10_000 },
    },
    {
      name: 'sixth interruption: doubled',
      phase: 'apply',
      count: 5,
      expect: { resumed: true, interruptedApplies: 6, delayMs: 20_000 },
    },
  ];
  for (const c of starts) {
    it(`start: ${c.name}`, () => {
      const { store, state } = memoryStore(c.phase, c.count);
      assert.deepEqual(new PhaseMachine(store).start(), c.expect);
      assert.equal(state.interruptedApplies, c.expect.interruptedApplies);
    });
  }

  it('five killed applies in a row reach the threshold; reaching idle resets the count', () => {
    const { store, state } = memoryStore('idle');
    new PhaseMachine(store).start();
    new PhaseMachine(store).send('work-planned');
    const delays: number[] = [];
    for (let run = 0; run < 6; run += 1) {
      // Each run is killed mid-apply: it starts, provisioning returns, the pass plans work again, then nothing.
      const machine = new PhaseMachine(store);
      delays.push(machine.start().delayMs);
      machine.send('provisioned');
      machine.send('work-planned');
    }
    assert.deepEqual(delays, [0, 0, 0, 0, 10_000, 20_000]);
    const survivor = new PhaseMachine(store);
    assert.equal(survivor.start().interruptedApplies, 7);
    survivor.send('pass-finished');
    assert.equal(state.interruptedApplies, 0);
    assert.equal(state.phase, 'idle');
    assert.deepEqual(new PhaseMachine(store).start(), { resumed: false, interruptedApplies: 0, delayMs: 0 });
  });

  it('the counter round-trips through a reopened SQLite store, and a malformed value reads as 0', async () => {
    const dir = await tempDir('flotilla-agent-phases-');
    try {
      const first = openStore(dir.path);
      assert.equal(first.getInterruptedApplies(), 0, 'nothing counted on a fresh device');
      first.setPhase('apply');
      first.close();
      for (const expected of [1, 2, 3]) {
        const store = openStore(dir.path);
        assert.equal(new PhaseMachine(store).start().interruptedApplies, expected);
        store.close();
      }
      const reopened = openStore(dir.path);
      assert.equal(reopened.getInterruptedApplies(), 3);
      assert.equal(reopened.getPhase(), 'apply');
      new PhaseMachine(reopened).send('pass-finished');
      reopened.close();
      const after = openStore(dir.path);
      assert.equal(after.getInterruptedApplies(), 0);
      assert.equal(after.getPhase(), 'idle');
      after.close();

      const db = new Database(join(dir.path, 'agent.sqlite'));
      db.prepare("UPDATE kv SET value = '\"lots\"' WHERE key = 'interruptedApplies'").run();
      db.close();
      const malformed = openStore(dir.path);
      assert.equal(malformed.getInterruptedApplies(), 0);
      malformed.close();
    } finally {
      await dir.remove();
    }
  });
});
