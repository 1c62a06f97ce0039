import type { CurrentApp, DeviceReport, DeviceRollback } from '@flotilla/protocol';
import type { DeviceView } from '../reconcile/observed.js';
import type { CurrentState, TargetModel } from '../reconcile/state.js';
import { buildAppsReport } from './build-report.js';
import type { Metrics } from './metrics.js';

/** The device-wide update state, as both the state report and the local device API (`GET /v1/device`) give it. */
export interface UpdateState {
  status: 'Idle' | 'Updating' | 'Update failed' | 'Waiting for update window';
  updatePending: boolean;
  /** Every app is downloaded or done, and at least one waits to apply (e.g. behind an update lock). */
  updateDownloaded: boolean;
  updateFailed: boolean;
  /** Mean progress of the pulls under way, or null when none is. */
  downloadProgress: number | null;
}

/** Pure: the update state of `view`. */
export function updateState(
  view: Pick<DeviceView, 'statuses' | 'progress' | 'failed' | 'windowWait'> & { rollback?: DeviceRollback | null },
): UpdateState {
  const values = [...view.statuses.values()];
  const updating = values.some((s) => s !== 'done');
  const downloads = [...view.progress.values()];
  // A release the device rolled back from and refuses is an update that failed, however well the old one runs.
  const failed = view.failed || (view.rollback ?? null) !== null;
  return {
    status: failed
      ? 'Update failed'
      : // Downloads done, nothing else to do until the window opens: what the device waits for is the window.
        updating && view.windowWait && downloads.length === 0
        ? 'Waiting for update window'
        : updating
          ? 'Updating'
          : 'Idle',
    updatePending: updating,
    updateDownloaded:
      values.length > 0 &&
      values.every((s) => s === 'downloaded' || s === 'done') &&
      values.some((s) => s === 'downloaded'),
    updateFailed: failed,
    downloadProgress: downloads.length ? Math.round(downloads.reduce((a, b) => a + b, 0) / downloads.length) : null,
  };
}

/** What the device says about itself in every report, besides its state. */
export interface DeviceAbout {
  /** The port the local device API listens on; null when it is disabled or could not listen. */
  api_port: number | null;
  /** What lets the control plane call this device's API (balena reports the same key). */
  api_secret: string;
  os_version: string;
  os_variant: 'dev' | 'prod';
  supervisor_version: string;
}

/** A view with something to report: the engine was read at least once and there is a target. */
export type ReportableView = DeviceView & { current: CurrentState; target: TargetModel };

export function reportable(view: DeviceView): view is ReportableView {
  return view.current !== undefined && view.target !== null;
}

/**
 * Pure: the full current-state report (the reporter sends only its diff against the last ACKed one). Releases the
 * control plane offered but that failed validation are reported 'rejected', beside what the device runs.
 */
export function buildDeviceReport(
  view: ReportableView,
  rejected: Readonly<Record<string, readonly string[]>>,
  about: DeviceAbout,
  metrics: Metrics,
): DeviceReport {
  const apps = withRejected(buildAppsReport(view), rejected);
  const rollback = view.rollback ?? null;
  // The refused release, beside the one the device went back to (which the applied target names).
  if (rollback)
    for (const app of view.target.apps) {
      const entry = apps[app.appUuid];
      if (entry && app.commit === rollback.to_commit)
        entry.releases[rollback.from_commit] = { update_status: 'aborted', services: {} };
    }
  const state = updateState(view);
  return {
    status: state.status,
    ...about,
    update_pending: state.updatePending,
    update_failed: state.updateFailed,
    rollback,
    os_update: view.osUpdate ?? null,
    update_window_opens_at:
      view.windowWait?.opensAt === undefined || view.windowWait.opensAt === null
        ? null
        : new Date(view.windowWait.opensAt).toISOString(),
    ...metrics,
    apps,
  };
}

function withRejected(
  apps: Record<string, CurrentApp>,
  rejected: Readonly<Record<string, readonly string[]>>,
): Record<string, CurrentApp> {
  for (const [appUuid, commits] of Object.entries(rejected)) {
    const app = (apps[appUuid] ??= { release_uuid: null, releases: {} });
    for (const commit of commits)
      app.releases[commit] = {
        ...app.releases[commit],
        update_status: 'rejected',
        services: app.releases[commit]?.services ?? {},
      };
  }
  return apps;
}
