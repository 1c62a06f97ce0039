import type { OsRollout, Rollout, RolloutDeviceState, RolloutStatus } from '@flotilla/protocol';

/** A release's staged rollout or an OS one: the same batches, devices, events, plan and controls. */
export type StagedRollout = Rollout | OsRollout;

/** A release rollout whose release still builds: no batch opened yet. An OS rollout never waits. */
export const waitsToBuild = (rollout: StagedRollout): boolean => 'waiting' in rollout && rollout.waiting;

const STATUS: Record<RolloutStatus, string> = {
  running: 'Running',
  paused: 'Paused',
  completed: 'Completed',
  aborted: 'Aborted',
  superseded: 'Superseded',
  cancelled: 'Cancelled',
};
/** Badge colours (styles.css `.badge-*`); the words carry the meaning, colour only repeats it. */
const STATUS_TONE: Record<RolloutStatus, string> = {
  running: 'updating',
  paused: 'failed',
  completed: 'online',
  aborted: 'offline',
  superseded: 'offline',
  cancelled: 'offline',
};

export const rolloutStatusWord = (status: RolloutStatus): string => STATUS[status];
export const rolloutStatusTone = (status: RolloutStatus): string => STATUS_TONE[status];

/** A rollout still in progress: what may be paused, resumed or aborted, and what is worth polling. */
export const isActive = (status: RolloutStatus): boolean => status === 'running' || status === 'paused';

const DEVICE_TONE: Record<RolloutDeviceState, string> = {
  pending: 'updating',
  succeeded: 'online',
  failed: 'failed',
  offline: 'offline',
  excused: 'offline',
};
export const deviceStateTone = (state: RolloutDeviceState): string => DEVICE_TONE[state];

/** The plan in words: `5% → 25% → 100% (canary=true first), soak 5m, …`. */
export function planFacts(plan: StagedRollout['plan']): [string, string][] {
  return [
    [
      'Batches',
      [...(plan.tag ? [`${plan.tag.key}=${plan.tag.value}`] : []), ...plan.batches.map((b) => `${b}%`)].join(' → '),
    ],
    ['Tagged batch', plan.tag ? `devices tagged ${plan.tag.key}=${plan.tag.value}, first` : 'none'],
    ['Soak', `${plan.soakSeconds} s healthy before a device counts as succeeded`],
    ['Offline after', `${plan.offlineTimeoutSeconds} s unseen, a device holds its batch back no longer`],
    ['Success threshold', `${plan.successThreshold}% of a batch succeeded opens the next`],
    ['Failure threshold', `more than ${plan.failureThreshold}% of a batch failed pauses the rollout`],
  ];
}
