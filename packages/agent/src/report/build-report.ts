import type { CurrentApp, DeviceReport, UpdateStatus } from '@flotilla/protocol';
import { findImage } from '../reconcile/plan.js';
import type { CurrentContainer, CurrentState, TargetModel } from '../reconcile/state.js';

export interface ReportInput {
  current: CurrentState;
  target: TargetModel;
  statuses: ReadonlyMap<number, UpdateStatus>;
  progress: ReadonlyMap<string, number>;
  /** Set when the last pass failed terminally: that app's update is 'aborted'. */
  failed: boolean;
}

function containerStatus(c: CurrentContainer): string {
  switch (c.state) {
    case 'running':
      return 'Running';
    case 'created':
      return 'Installing';
    case 'restarting':
      return 'Restarting';
    case 'exited':
      return 'Exited';
    case 'paused':
      return 'Paused';
    case 'removing':
      return 'Stopping';
    case 'dead':
      return 'Dead';
    default:
      return c.state;
  }
}

/**
 * The apps part of the current-state report. A container is reported under the target release when its config
 * and image match a target service (so a metadata-only release change shows the new release at once); otherwise
 * under the release its labels name.
 */
export function buildAppsReport(input: ReportInput): Record<string, CurrentApp> {
  const { current, target } = input;
  const apps: Record<string, CurrentApp> = {};
  const reported = new Set<string>();
  for (const app of target.apps) {
    const entry: CurrentApp = { release_uuid: null, releases: {} };
    apps[app.appUuid] = entry;
    if (app.commit === null) continue;
    const services: Record<
      string,
      { image: string; status: string; download_progress: number | null; health?: 'starting' | 'healthy' | 'unhealthy' }
    > = {};
    let allMatch = app.services.length > 0;
    for (const svc of app.services) {
      const image = findImage(current.images, svc.image);
      const match = current.containers.find(
        (c) =>
          c.appId === app.appId &&
          c.serviceName === svc.serviceName &&
          image &&
          c.imageId === image.id &&
          c.configHash === svc.configHash,
      );
      if (match) reported.add(match.id);
      const progress = input.progress.get(svc.image);
      const status = match
        ? containerStatus(match)
        : progress !== undefined
          ? 'Downloading'
          : image
            ? 'Downloaded'
            : 'Awaiting download';
      if (!match || (svc.running && match.state !== 'running')) allMatch = false;
      services[svc.serviceName] = {
        image: svc.image,
        status,
        download_progress: progress ?? null,
        ...(match?.health === undefined ? {} : { health: match.health }),
      };
    }
    const status = input.failed ? 'aborted' : (input.statuses.get(app.appId) ?? 'applying changes');
    entry.releases[app.commit] = { update_status: status, services };
    if (allMatch) entry.release_uuid = app.commit;
  }
  // Containers of older releases (still running during an update) or of apps leaving the target.
  for (const c of current.containers) {
    if (reported.has(c.id)) continue;
    const entry = (apps[c.appUuid] ??= { release_uuid: null, releases: {} });
    const release = (entry.releases[c.releaseCommit] ??= { services: {} });
    release.services[c.serviceName] = { image: c.imageId, status: containerStatus(c), download_progress: null };
    if (entry.release_uuid === null && !target.apps.some((a) => a.appUuid === c.appUuid))
      entry.release_uuid = c.releaseCommit;
  }
  // Apps without release_uuid still name the one their running containers belong to.
  for (const [uuid, entry] of Object.entries(apps)) {
    if (entry.release_uuid !== null) continue;
    const running = current.containers.find((c) => c.appUuid === uuid && c.state === 'running');
    if (running) entry.release_uuid = running.releaseCommit;
  }
  return apps;
}

/** Absolute change below which a metric is not worth a report on its own (balena reports coarse metrics too). */
const METRIC_THRESHOLDS: Record<string, number> = { cpu_usage: 20, cpu_temp: 5, memory_usage: 64, storage_usage: 256 };

/** The keys of `next` that differ from the last ACKed report (whole values; metrics only beyond a threshold). */
export function diffReport(last: DeviceReport | undefined, next: DeviceReport): DeviceReport {
  if (!last) return next;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(next)) {
    const before = (last as Record<string, unknown>)[key];
    const threshold = METRIC_THRESHOLDS[key];
    if (threshold !== undefined && typeof value === 'number' && typeof before === 'number') {
      if (Math.abs(value - before) >= threshold) out[key] = value;
    } else if (JSON.stringify(value) !== JSON.stringify(before)) {
      out[key] = value;
    }
  }
  return out as DeviceReport;
}

/** What the control plane holds after it ACKs `sent` on top of `last`. */
export function mergeReport(last: DeviceReport | undefined, sent: DeviceReport): DeviceReport {
  return { ...(last ?? {}), ...sent };
}
