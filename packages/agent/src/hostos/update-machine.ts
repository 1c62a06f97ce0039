import type { ErrorCode } from '@flotilla/protocol';
import { otherSlot, type Slot } from './host-os-config.js';

/** A host OS release for the device: where its raw root filesystem image is, and what it must hash to. */
export interface OsTarget {
  version: string;
  /** file:, http: or https: */
  url: string;
  /** Hex sha256 of the image. */
  sha256: string;
  size: number;
}

export type UpdatePhase =
  | 'idle'
  | 'writing'
  | 'verifying'
  | 'armed'
  | 'trial'
  | 'rolling-back'
  | 'committed'
  | 'rolled-back'
  | 'failed';

export interface UpdateReason {
  code: ErrorCode;
  message: string;
}

/** The persisted record of the host OS update (one at a time). */
export interface UpdateState {
  phase: UpdatePhase;
  target: OsTarget | null;
  /** The slot that ran when the update began: the known-good OS. */
  fromSlot: Slot | null;
  /** The slot written: the other one. */
  toSlot: Slot | null;
  /**
   * The write under way for this target, from 1: a write (or its read-back) that failed begins the next one, up to
   * MAX_WRITE_ATTEMPTS. A restart mid-write does not: it goes on with the same write, from its checkpoint.
   */
  attempts: number;
  /** Agent starts that found this update's write cut short (power cut, kill, crash); bounded by MAX_WRITE_RESTARTS. */
  restarts: number;
  /** Why it rolled back or failed; while writing again, why the previous write failed. */
  reason: UpdateReason | null;
}

/** Writes of one target that may fail (I/O error, digest mismatch, download refused) before it is given up. */
export const MAX_WRITE_ATTEMPTS = 3;
/**
 * Agent starts mid-write one update may take. A restart is routine (the write resumes from its checkpoint), so it uses
 * up no write attempt; this larger budget only stops a write that brings the agent down every time from going on
 * for ever.
 */
export const MAX_WRITE_RESTARTS = 10;
/** Failures that another write cannot mend: the update fails at once. */
const FINAL_FAILURES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['OS_IMAGE_TOO_LARGE']);

export const IDLE: UpdateState = {
  phase: 'idle',
  target: null,
  fromSlot: null,
  toSlot: null,
  attempts: 0,
  restarts: 0,
  reason: null,
};

export type UpdateEvent =
  | { type: 'start'; target: OsTarget; booted: Slot }
  | { type: 'written' }
  /** The slot read back right and the bootloader is armed for one trial boot of it. */
  | { type: 'verified' }
  /** The write or its read-back failed (digest, size, I/O, download): nothing was switched. */
  | { type: 'refused'; reason: UpdateReason }
  /** The agent started on the slot the update began on. */
  | { type: 'boot-old' }
  /** The agent started on the slot the update wrote. */
  | { type: 'boot-new' }
  | { type: 'healthy' }
  | { type: 'unhealthy'; reason: UpdateReason };
export type UpdateEventType = UpdateEvent['type'];

const TERMINAL = { start: 'writing', 'boot-old': 'same', 'boot-new': 'same' } as const;
/**
 * `within` while the event's budget lasts, else `spent`: for 'refused' the write attempts (MAX_WRITE_ATTEMPTS; a
 * FINAL_FAILURES code spends them all at once), for 'boot-old' the restarts (MAX_WRITE_RESTARTS).
 */
export interface Budgeted {
  within: UpdatePhase;
  spent: UpdatePhase;
}
const WRITE_AGAIN: Budgeted = { within: 'writing', spent: 'failed' };
type Next = UpdatePhase | 'same' | Budgeted;

/**
 * The one transition table. A missing entry refuses the event (the state is kept). INVARIANTS:
 * - the bootloader is armed only between 'verifying' and 'armed', so in 'writing' no boot can start the new slot;
 * - a start on the old slot before 'committed' can only mean a retry (not yet armed) or a rollback (armed);
 * - 'committed' is reached only from 'trial', i.e. on the new slot after its health checks passed.
 */
export const UPDATE_TABLE: Record<UpdatePhase, Partial<Record<UpdateEventType, Next>>> = {
  idle: TERMINAL,
  writing: { written: 'verifying', refused: WRITE_AGAIN, 'boot-old': WRITE_AGAIN },
  // boot-new: armed, then the power went before 'armed' was stored; what runs is the verified image on trial.
  verifying: { verified: 'armed', refused: WRITE_AGAIN, 'boot-old': WRITE_AGAIN, 'boot-new': 'trial' },
  armed: { 'boot-new': 'trial', 'boot-old': 'rolled-back' },
  trial: { healthy: 'committed', unhealthy: 'rolling-back', 'boot-new': 'trial', 'boot-old': 'rolled-back' },
  'rolling-back': { 'boot-old': 'rolled-back', 'boot-new': 'rolling-back' },
  committed: TERMINAL,
  'rolled-back': TERMINAL,
  failed: TERMINAL,
};

/** Phases in which an update is under way (a new one is refused). */
export function inProgress(phase: UpdatePhase): boolean {
  return !(phase in { idle: 1, committed: 1, 'rolled-back': 1, failed: 1 });
}

export type UpdateTransition =
  | { ok: true; state: UpdateState }
  | { ok: false; phase: UpdatePhase; event: UpdateEventType };

/** Pure: the state `event` leads to, or a refusal. */
export function transition(state: UpdateState, event: UpdateEvent): UpdateTransition {
  const next = UPDATE_TABLE[state.phase][event.type];
  if (next === undefined) return { ok: false, phase: state.phase, event: event.type };
  if (typeof next === 'object') return { ok: true, state: budgeted(state, event, next) };
  const phase = next === 'same' ? state.phase : next;
  switch (event.type) {
    case 'start':
      return {
        ok: true,
        state: {
          phase,
          target: event.target,
          fromSlot: event.booted,
          toSlot: otherSlot(event.booted),
          attempts: 1,
          restarts: 0,
          reason: null,
        },
      };
    case 'boot-old':
      if (phase === 'rolled-back' && state.phase !== 'rolled-back')
        return { ok: true, state: { ...state, phase, reason: state.reason ?? trialBootFailed(state) } };
      return { ok: true, state: { ...state, phase } };
    case 'written':
      // INVARIANT: the failure of an earlier write is over; a rollback must not take it for its reason.
      return { ok: true, state: { ...state, phase, reason: null } };
    case 'refused':
    case 'unhealthy':
      return { ok: true, state: { ...state, phase, reason: event.reason } };
    default:
      return { ok: true, state: { ...state, phase } };
  }
}

/** A write cut short by a restart goes on (restarts + 1); one that failed begins the next attempt (attempts + 1). */
function budgeted(state: UpdateState, event: UpdateEvent, next: Budgeted): UpdateState {
  if (event.type === 'refused') {
    const final = FINAL_FAILURES.has(event.reason.code) || state.attempts >= MAX_WRITE_ATTEMPTS;
    if (final) return { ...state, phase: next.spent, reason: event.reason };
    return { ...state, phase: next.within, attempts: state.attempts + 1, reason: event.reason };
  }
  const restarts = state.restarts + 1;
  if (restarts <= MAX_WRITE_RESTARTS) return { ...state, phase: next.within, restarts };
  return {
    ...state,
    phase: next.spent,
    restarts,
    reason: {
      code: 'OS_UPDATE_RETRIES_EXHAUSTED',
      message: `the agent started ${restarts} times while OS ${state.target?.version} was being written`,
    },
  };
}

function trialBootFailed(state: UpdateState): UpdateReason {
  return {
    code: 'OS_TRIAL_BOOT_FAILED',
    message: `slot ${state.fromSlot} started again before OS ${state.target?.version} on slot ${state.toSlot} committed itself`,
  };
}
