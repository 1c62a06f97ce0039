import type { Phase, Store } from '../store/store.js';
import { backoffMs } from '../util/wakeable.js';

/**
 * What moves the device between phases. The work itself runs in concurrent loops (provisioning, poller, reconcile
 * runner); each reports what happened as one of these events, and only this table decides the phase.
 */
export const PHASE_EVENTS = [
  /** The device has no device id yet; provisioning is (re)trying. */
  'provision-needed',
  /** Provisioning returned: the device is registered. */
  'provisioned',
  /** A reconcile pass planned steps for some app: an update is under way. */
  'work-planned',
  /** A reconcile pass ended converged, waiting or failed (not cancelled): nothing is half applied any more. */
  'pass-finished',
] as const;
export type PhaseEvent = (typeof PHASE_EVENTS)[number];

/** `null`: the event is refused in that phase, which is kept. */
type Table = Record<Phase, Record<PhaseEvent, Phase | null>>;

/**
 * INVARIANT: 'apply' is left only by 'pass-finished'. A persisted 'apply' therefore means "an update was cut short",
 * which is what the resume log and crash-loop detection read at start; provisioning must not paper over it.
 */
export const PHASE_TABLE: Table = {
  provision: { 'provision-needed': 'provision', provisioned: 'idle', 'work-planned': 'apply', 'pass-finished': 'idle' },
  idle: { 'provision-needed': 'provision', provisioned: 'idle', 'work-planned': 'apply', 'pass-finished': 'idle' },
  apply: { 'provision-needed': null, provisioned: 'apply', 'work-planned': 'apply', 'pass-finished': 'idle' },
};

export type Transition = { ok: true; from: Phase; to: Phase } | { ok: false; from: Phase; event: PhaseEvent };

/** Pure: the phase `event` leads to from `phase`, or a refusal (the caller keeps `phase`). */
export function transition(phase: Phase, event: PhaseEvent): Transition {
  const to = PHASE_TABLE[phase][event];
  return to === null ? { ok: false, from: phase, event } : { ok: true, from: phase, to };
}

/** Starts in 'apply' in a row before it counts as a crash loop: one power cut or OOM kill is routine, five are not. */
export const CRASH_LOOP_THRESHOLD = 5;
/** First delay once looping: enough for the engine and disk to settle after a kill, short enough to look like a retry. */
export const CRASH_LOOP_BASE_MS = 10_000;
/** Cap: the update is still retried twice an hour, so a fixed release reaches the device without a human. */
export const CRASH_LOOP_CAP_MS = 30 * 60_000;

/** Delay before the first reconcile pass after `interrupted` applies in a row were cut short: min(cap, base·2^(n-5)). */
export function crashLoopDelayMs(interrupted: number): number {
  if (interrupted < CRASH_LOOP_THRESHOLD) return 0;
  return backoffMs(interrupted - CRASH_LOOP_THRESHOLD + 1, CRASH_LOOP_CAP_MS, CRASH_LOOP_BASE_MS);
}

export interface StartInfo {
  /** The previous run stopped in 'apply' (killed, crashed or lost power mid-update). */
  resumed: boolean;
  /** Starts in 'apply' in a row, this one included, since the device was last idle. */
  interruptedApplies: number;
  /** How long to hold the first reconcile pass back (0 unless in a crash loop). */
  delayMs: number;
}

/** The device phase, persisted through the Store (which writes only on change), with crash-loop counting. */
export class PhaseMachine {
  constructor(
    private readonly store: Pick<Store, 'getPhase' | 'setPhase' | 'getInterruptedApplies' | 'setInterruptedApplies'>,
  ) {}

  /** Call once per start, before any event: counts this start if the last run was cut short in 'apply'. */
  start(): StartInfo {
    if (this.store.getPhase() !== 'apply') {
      // Not in 'apply' means the last apply ended; a stale count (crash between the two writes) must not linger.
      this.store.setInterruptedApplies(0);
      return { resumed: false, interruptedApplies: 0, delayMs: 0 };
    }
    const interruptedApplies = this.store.getInterruptedApplies() + 1;
    this.store.setInterruptedApplies(interruptedApplies);
    return { resumed: true, interruptedApplies, delayMs: crashLoopDelayMs(interruptedApplies) };
  }

  phase(): Phase {
    return this.store.getPhase();
  }

  /** Applies `event`; a refusal is returned (for the caller to log) and leaves the phase as it was. */
  send(event: PhaseEvent): Transition {
    const result = transition(this.store.getPhase(), event);
    if (!result.ok) return result;
    // Counter first: a crash between the writes then under-counts (safe) rather than leaving a stale count behind.
    if (result.to === 'idle') this.store.setInterruptedApplies(0);
    this.store.setPhase(result.to);
    return result;
  }
}
