import type { RolloutDeviceState, RolloutPlan } from '@flotilla/protocol';

/**
 * The rollout's rules, pure (no database, no clock): which batch a device is in, whether a device succeeded, and
 * what a batch's figures mean for the rollout. rollout-evaluation.ts feeds them what the database holds.
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
  return judgeBy(current, notRunningWhy(device, release), device.last_seen_at, ctx);
}

/**
 * The soak and offline rules shared by app and OS rollouts, for a device not yet final: `whyNot` is null while it
 * runs what the rollout gives (healthy), else why not.
 */
function judgeBy(
  current: DeviceJudgement,
  whyNot: string | null,
  lastSeenAt: string | null,
  ctx: JudgeContext,
): DeviceJudgement {
  if (whyNot === null) {
    const since = current.healthy_since ?? new Date(ctx.now).toISOString();
    const state: RolloutDeviceState = ctx.now - Date.parse(since) >= ctx.soakMs ? 'succeeded' : 'pending';
    return { state, healthy_since: since };
  }
  const lastSeen = lastSeenAt === null ? Number.NEGATIVE_INFINITY : Date.parse(lastSeenAt);
  // Offline stays offline until the device is seen again: the clock of a batch opened since is not its own.
  const gone =
    ctx.now - lastSeen >= ctx.offlineTimeoutMs &&
    (current.state === 'offline' || ctx.now - ctx.openedAt >= ctx.offlineTimeoutMs);
  return { state: gone ? ('offline' as const) : ('pending' as const), healthy_since: null };
}

/** What a device last reported of its host OS, as the devices table holds it (os_update_json: protocol DeviceOsUpdate). */
export interface OsFacts {
  last_seen_at: string | null;
  os_version: string | null;
  os_update_json: string | null;
}

interface ReportedOsUpdate {
  phase?: string;
  version?: string | null;
  error_code?: string | null;
  error?: string | null;
}

function osUpdateOf(device: Pick<OsFacts, 'os_update_json'>): ReportedOsUpdate | undefined {
  if (device.os_update_json === null) return undefined;
  try {
    return JSON.parse(device.os_update_json) as ReportedOsUpdate;
  } catch {
    return undefined;
  }
}

/**
 * The OS version the device runs, as far as its reports tell: the version of its last update when that committed,
 * else the last word of the OS it reports (a PRETTY_NAME such as `balenaOS 2.0.0`: a device flashed with it).
 */
export function runningOsVersion(device: Pick<OsFacts, 'os_version' | 'os_update_json'>): string | undefined {
  const update = osUpdateOf(device);
  if (update?.phase === 'committed' && update.version) return update.version;
  return device.os_version?.trim().split(/\s+/).at(-1) || undefined;
}

/**
 * Whether the device runs OS `version`: its OS update of that version is committed, or (no update of that version
 * reported) the OS it reports ends with the version as its own word, as a PRETTY_NAME does (`Flotilla OS 2.0.0`,
 * `balenaOS 2.0.0`): a device flashed with it, which the agent never writes again. Null when it does; else why not.
 */
export function osNotRunningWhy(device: OsFacts, version: string): string | null {
  const update = osUpdateOf(device);
  if (update?.version === version)
    return update.phase === 'committed' ? null : `its update to OS ${version} is ${update.phase ?? 'unknown'}`;
  if (device.os_version?.trim().split(/\s+/).at(-1) === version) return null;
  return `it does not run OS ${version} yet`;
}

/** Why the device failed to install OS `version` (it rolled back from its trial, or the update failed); else null. */
export function osFailureOf(device: OsFacts, version: string): string | null {
  const update = osUpdateOf(device);
  if (update?.version !== version || (update.phase !== 'rolled-back' && update.phase !== 'failed')) return null;
  const why = update.error ? `: ${update.error}${update.error_code ? ` (${update.error_code})` : ''}` : '';
  return `OS ${version} ${update.phase}${why}`;
}

/**
 * The next state of a device of an opened batch of an OS rollout: as judgeDevice, with the OS as what it must run,
 * and failed (final, with the reason) as soon as what it last reported says that OS rolled back or failed. The
 * failure is read from the stored report (it stays until the device starts another update), so it is level-based.
 */
export function judgeOsDevice(
  current: DeviceJudgement,
  device: OsFacts,
  version: string,
  ctx: JudgeContext,
): DeviceJudgement & { reason?: string } {
  if (current.state === 'failed' || current.state === 'excused' || current.state === 'succeeded') return current;
  const failure = osFailureOf(device, version);
  if (failure !== null) return { state: 'failed', healthy_since: null, reason: failure };
  return judgeBy(current, osNotRunningWhy(device, version), device.last_seen_at, ctx);
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
