import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UpdateWindow } from '@flotilla/protocol';
import { UpdateGate, type UpdateGateDeps } from './update-gate.js';

/** 02:00-04:00 UTC every day. */
const NIGHTLY: UpdateWindow = { cron: '0 2 * * *', durationSeconds: 7200, timezone: 'UTC' };
const NOON = Date.parse('2026-12-01T12:00:00Z');
const INSIDE = Date.parse('2026-12-01T03:00:00Z');
const NEXT_OPENING = Date.parse('2026-12-02T02:00:00Z');

function setup(o: Partial<UpdateGateDeps> & { stored?: string | null; at?: number } = {}) {
  const state = { stored: o.stored ?? null, writes: 0, key: 'target-a', at: o.at ?? NOON, warnings: 0 };
  const deps: UpdateGateDeps = {
    store: {
      getWindowApply: () => state.stored,
      setWindowApply: (digest) => {
        state.stored = digest;
        state.writes += 1;
      },
    },
    window: () => NIGHTLY,
    targetKey: () => state.key,
    forced: () => false,
    rollingBack: () => false,
    log: { warn: () => void (state.warnings += 1) },
    now: () => state.at,
    ...o,
  };
  return { gate: new UpdateGate(deps), state, deps };
}

describe('UpdateGate', () => {
  it('decides from the window, a forced update and a rollback', () => {
    const cases: Array<[string, Partial<UpdateGateDeps> & { at?: number }, ReturnType<UpdateGate['verdict']>]> = [
      ['no window: no verdict (apply at once)', { window: () => undefined }, undefined],
      ['a null window is none', { window: () => null }, undefined],
      ['outside: hold, and say when it opens', {}, { mayApply: false, opensAt: NEXT_OPENING }],
      ['inside: apply', { at: INSIDE }, { mayApply: true, opensAt: null }],
      ['forced: apply once, outside too', { forced: () => true }, { mayApply: true, opensAt: null }],
      ['rolling back: never held', { rollingBack: () => true }, { mayApply: true, opensAt: null }],
    ];
    for (const [label, deps, expected] of cases) assert.deepEqual(setup(deps).gate.verdict(), expected, label);
  });

  it('finishes an apply begun inside the window after it closes, and only for that target', () => {
    const { gate, state } = setup({ at: INSIDE });
    gate.applying();
    gate.applying();
    assert.equal(state.writes, 1, 'persisted once');
    state.at = NOON;
    assert.deepEqual(gate.verdict(), { mayApply: true, opensAt: null }, 'the window closed mid-apply');
    state.key = 'target-b';
    assert.equal(gate.verdict()?.mayApply, false, 'a newer target waits for the window');
    state.key = 'target-a';
    gate.converged();
    assert.equal(state.stored, null);
    assert.equal(gate.verdict()?.mayApply, false, 'converged: the next update waits again');
  });

  it('an apply in progress survives a restart (persisted)', () => {
    const first = setup({ at: INSIDE });
    first.gate.applying();
    const restarted = setup({ stored: first.state.stored, at: NOON });
    assert.deepEqual(restarted.gate.verdict(), { mayApply: true, opensAt: null });
  });

  it('a window this agent cannot read holds nothing back, and is warned about once', () => {
    const { gate, state } = setup({ window: () => ({ ...NIGHTLY, cron: 'L L L L L' }) });
    assert.equal(gate.verdict(), undefined);
    assert.equal(gate.verdict(), undefined);
    assert.equal(state.warnings, 1);
  });
});
