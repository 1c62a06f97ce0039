import type { DeviceReport } from '@flotilla/protocol';
import type { Updateable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { now } from '../db/database.js';

type DevicePatch = Updateable<Database['devices']>;

/** Folds a (partial) current-state report into the device row; absent fields keep their stored values. */
export function reportToPatch(report: DeviceReport, at = now()): DevicePatch {
  const patch: DevicePatch = { last_seen_at: at };
  const copy = <K extends keyof DevicePatch>(key: K, value: DevicePatch[K] | undefined) => {
    if (value !== undefined) patch[key] = value;
  };
  copy('os_version', report.os_version);
  copy('os_variant', report.os_variant);
  copy('agent_version', report.supervisor_version);
  copy('ip_address', report.ip_address);
  copy('mac_address', report.mac_address);
  copy('status', report.status);
  if (report.update_failed !== undefined) patch.update_failed = report.update_failed ? 1 : 0;
  copy('api_port', report.api_port);
  copy('cpu_usage', report.cpu_usage);
  copy('cpu_temp', report.cpu_temp);
  copy('memory_usage', report.memory_usage);
  copy('memory_total', report.memory_total);
  copy('storage_usage', report.storage_usage);
  copy('storage_total', report.storage_total);
  if (report.is_on__commit !== undefined) patch.running_release = report.is_on__commit;
  if (report.rollback !== undefined)
    patch.rollback_json = report.rollback === null ? null : JSON.stringify(report.rollback);
  if (report.os_update !== undefined)
    patch.os_update_json = report.os_update === null ? null : JSON.stringify(report.os_update);
  if (report.update_window_opens_at !== undefined) {
    // Stored as the API shows it (ISO 8601); what does not read as a time counts as no wait.
    const at = report.update_window_opens_at === null ? Number.NaN : Date.parse(report.update_window_opens_at);
    patch.update_window_opens_at = Number.isNaN(at) ? null : new Date(at).toISOString();
  }
  if (report.apps) {
    const services: Record<
      string,
      { status: string; image: string; releaseCommit: string | null; downloadProgress: number | null; health?: string }
    > = {};
    let running: string | null | undefined;
    for (const app of Object.values(report.apps)) {
      for (const [commit, release] of Object.entries(app.releases)) {
        for (const [name, s] of Object.entries(release.services)) {
          services[name] = {
            status: s.status,
            image: s.image,
            releaseCommit: commit,
            downloadProgress: s.download_progress ?? null,
            // Only where the device reports one: rollouts wait for `healthy` (rollouts/judge.ts).
            ...(s.health === undefined ? {} : { health: s.health }),
          };
        }
        if (
          release.update_status === 'done' ||
          (release.update_status === undefined && Object.values(release.services).every((s) => s.status === 'Running'))
        )
          running = commit;
      }
    }
    patch.services_json = JSON.stringify(services);
    if (running !== undefined && patch.running_release === undefined) patch.running_release = running;
  }
  return patch;
}

export async function applyReport(db: Db, deviceId: number, report: DeviceReport): Promise<void> {
  await db.updateTable('devices').set(reportToPatch(report)).where('id', '=', deviceId).execute();
}
