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
  /** Writes begun for this target (a power cut mid-write makes the next start begin another). */
  attempts: number;
  reason: UpdateReason | null;
}

export const IDLE: UpdateState = {
  phase: 'idle',
  target: null,
  fromSlot: null,
  toSlot: null,
  attempts: 0,
  reason: null,
};

export type UpdateEvent =
  | { type: 'start'; target: OsTarget; booted: Slot }
  | { type: 'written' }
  /** The slot read back right and the bootloader is armed for one trial boot of it. */
  | { type: 'verified' }
  /** The image cannot be used (digest, size, I/O): nothing was switched. */
  | { type: 'refused'; reason: UpdateReason }
  /** The agent started on the slot the update began on. */
  | { type: 'boot-old' }
  /** The agent started on the slot the update wrote. */
  | { type: 'boot-new' }
  | { type: 'healthy' }
  | { type: 'unhealthy'; reason: UpdateReason }
  /** Writing was begun too many times without finishing. */
  | { type: 'give-up'; reason: UpdateReason };
export type UpdateEventType = UpdateEvent['type'];

const TERMINAL = { start: 'writing', 'boot-old': 'same', 'boot-new': 'same' } as const;
type Next = UpdatePhase | 'same';

/**
 * The one transition table. A missing entry refuses the event (the state is kept). INVARIANTS:
 * - the bootloader is armed only between 'verifying' and 'armed', so in 'writing' no boot can start the new slot;
 * - a start on the old slot before 'committed' can only mean a retry (not yet armed) or a rollback (armed);
 * - 'committed' is reached only from 'trial', i.e. on the new slot after its health checks passed.
 */
export const UPDATE_TABLE: Record<UpdatePhase, Partial<Record<UpdateEventType, Next>>> = {
  idle: TERMINAL,
  writing: { written: 'verifying', refused: 'failed', 'boot-old': 'writing', 'give-up': 'failed' },
  // boot-new: armed, then the power went before 'armed' was stored; what runs is the verified image on trial.
  verifying: { verified: 'armed', refused: 'failed', 'boot-old': 'writing', 'boot-new': 'trial', 'give-up': 'failed' },
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
          reason: null,
        },
      };
    case 'boot-old':
      if (phase === 'writing') return { ok: true, state: { ...state, phase, attempts: state.attempts + 1 } };
      if (phase === 'rolled-back' && state.phase !== 'rolled-back')
        return { ok: true, state: { ...state, phase, reason: state.reason ?? trialBootFailed(state) } };
      return { ok: true, state: { ...state, phase } };
    case 'refused':
    case 'unhealthy':
    case 'give-up':
      return { ok: true, state: { ...state, phase, reason: event.reason } };
    default:
      return { ok: true, state: { ...state, phase } };
  }
}

function trialBootFailed(state: UpdateState): UpdateReason {
  return {
    code: 'OS_TRIAL_BOOT_FAILED',
    message: `slot ${state.fromSlot} started again before OS ${state.target?.version} on slot ${state.toSlot} committed itself`,
  };
}
