import type { RolloutDeviceState, RolloutPlan } from '@flotilla/protocol';

/**
 * The rollout's rules, pure (no database, no clock): which batch a device is in, whether a device succeeded, and
 * what a batch's figures mean for the rollout. rollout-engine.ts feeds them what the database holds.
 */

/**
 * Batches for the devices of a fleet (in the order given, already shuffled): the tagged devices first when the plan
 * names a tag, then cumulative percentages of the others. Returns the batch of each device, and each batch's label.
 */
export function assignBatches(
  deviceIds: readonly number[],
  tagged: ReadonlySet<number>,
  plan: Pick<RolloutPlan, 'batches' | 'tag'>,
): { batchOf: Map<number, number>; labels: string[] } {
  const batchOf = new Map<number, number>();
  const labels: string[] = [];
  let rest = [...deviceIds];
  if (plan.tag) {
    labels.push(`${plan.tag.key}=${plan.tag.value}`);
    for (const id of rest) if (tagged.has(id)) batchOf.set(id, 0);
    rest = rest.filter((id) => !tagged.has(id));
  }
  const offset = labels.length;
  let from = 0;
  plan.batches.forEach((pct, i) => {
    labels.push(`${pct}%`);
    const upto = i === plan.batches.length - 1 ? rest.length : Math.ceil((pct / 100) * rest.length);
    for (let j = from; j < upto; j++) batchOf.set(rest[j] as number, offset + i);
    from = Math.max(from, upto);
  });
  return { batchOf, labels };
}

/** What the device last reported, as the devices table holds it. */
export interface DeviceFacts {
  last_seen_at: string | null;
  running_release: string | null;
  services_json: string;
  update_failed: number;
}

/** The release being rolled out: its commit and which services have a healthcheck. */
export interface ReleaseFacts {
  commit: string;
  services: { name: string; healthcheck: boolean }[];
}

interface ReportedService {
  status?: string;
  releaseCommit?: string | null;
  health?: string;
}

/**
 * Whether the device runs the release with every service running and, where a service has a healthcheck and the
 * device reports its health, healthy. Null when it does; else why not.
 */
export function notRunningWhy(device: DeviceFacts, release: ReleaseFacts): string | null {
  if (device.update_failed === 1) return 'its update failed';
  if (device.running_release !== release.commit) return 'it does not run the release yet';
  let services: Record<string, ReportedService>;
  try {
    services = JSON.parse(device.services_json) as Record<string, ReportedService>;
  } catch {
    return 'its services are unknown';
  }
  for (const service of release.services) {
    const reported = services[service.name];
    if (!reported || reported.releaseCommit !== release.commit) return `service ${service.name} is not there`;
    if (reported.status?.toLowerCase() !== 'running') return `service ${service.name} is ${reported.status}`;
    // WARNING: a device that does not report health (an older agent, the balena Supervisor) is judged by `Running`.
    if (service.healthcheck && reported.health !== undefined && reported.health !== 'healthy')
      return `service ${service.name} is ${reported.health}`;
  }
  return null;
}

export interface DeviceJudgement {
  state: RolloutDeviceState;
  healthy_since: string | null;
}

export interface JudgeContext {
  now: number;
  soakMs: number;
  offlineTimeoutMs: number;
  /** When the device's batch (or the rollout's current batch, whichever is later) opened. */
  openedAt: number;
}

/**
 * The next state of a device of an opened batch. Failed, excused and succeeded are final (a failure is recorded
 * from the device's report, rollout-engine.ts `noteReport`). Otherwise: running the release healthy since
 * `healthy_since` for the soak time → succeeded; not running it and not seen for the offline timeout after the
 * batch opened → offline (it does not hold the batch back, stays offline while a later batch opens, and is judged
 * again when it comes back).
 * A device whose update waits for its maintenance window is seen (it polls and reports) and so stays pending: the
 * batch waits for its window rather than counting it failed or offline.
 */
export function judgeDevice(current: DeviceJudgement, device: DeviceFacts, release: ReleaseFacts, ctx: JudgeContext) {
  if (current.state === 'failed' || current.state === 'excused' || current.state === 'succeeded') return current;
  if (notRunningWhy(device, release) === null) {
    const since = current.healthy_since ?? new Date(ctx.now).toISOString();
    const state: RolloutDeviceState = ctx.now - Date.parse(since) >= ctx.soakMs ? 'succeeded' : 'pending';
    return { state, healthy_since: since };
  }
  const lastSeen = device.last_seen_at === null ? Number.NEGATIVE_INFINITY : Date.parse(device.last_seen_at);
  // Offline stays offline until the device is seen again: the clock of a batch opened since is not its own.
  const gone =
    ctx.now - lastSeen >= ctx.offlineTimeoutMs &&
    (current.state === 'offline' || ctx.now - ctx.openedAt >= ctx.offlineTimeoutMs);
  return { state: gone ? ('offline' as const) : ('pending' as const), healthy_since: null };
}

export interface BatchFigures {
  devices: number;
  pending: number;
  succeeded: number;
  failed: number;
  offline: number;
  excused: number;
}

export type BatchDecision = { action: 'wait' } | { action: 'open-next' } | { action: 'pause'; reason: string };

/**
 * What a batch's figures mean. Pause when failures exceed `failureThreshold` % of the batch (excused devices
 * aside); open the next batch when succeeded devices reach `successThreshold` % of the counted ones (offline and
 * excused aside; a batch with none counted does not hold the rollout back); else wait.
 */
export function decideBatch(
  batch: number,
  figures: BatchFigures,
  thresholds: { successThreshold: number; failureThreshold: number },
): BatchDecision {
  const judged = figures.devices - figures.excused;
  if (figures.failed > 0 && (figures.failed / judged) * 100 > thresholds.failureThreshold)
    return {
      action: 'pause',
      reason: `batch ${batch + 1}: ${figures.failed} of ${judged} device(s) failed, more than ${thresholds.failureThreshold}%`,
    };
  const counted = judged - figures.offline;
  if (counted <= 0 || (figures.succeeded / counted) * 100 >= thresholds.successThreshold)
    return { action: 'open-next' };
  return { action: 'wait' };
}
