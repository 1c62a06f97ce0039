import { FlotillaError, deviceOsUpdateSchema, deviceRollbackSchema, type Device } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { ONLINE_WINDOW_MS, fleetTargetRelease } from '../fleets/fleets.js';
import { releaseUnder, rolloutOverlay } from '../rollouts/rollout-overlay.js';
import { effectiveWindow } from '../update-windows/update-windows.js';

export type DeviceRow = Selectable<Database['devices']>;

export function isOnline(lastSeenAt: string | null, at = Date.now()): boolean {
  return lastSeenAt !== null && Date.parse(lastSeenAt) > at - ONLINE_WINDOW_MS;
}

const unique = <T>(values: T[]): T[] => [...new Set(values)];

/**
 * Devices as the user API shows them. INVARIANT (pages of 1,000 devices, the live feed of a 10,000-device fleet):
 * a fixed number of queries whatever the number of rows: their fleets, their pinned releases, their target OS, and each distinct
 * fleet's target release and rollout once (and a fleet under a rollout its batches, 500 devices a query); never a
 * query per device.
 */
export async function toDevices(db: Db, rows: readonly DeviceRow[]): Promise<Device[]> {
  if (rows.length === 0) return [];
  const fleetIds = unique(rows.map((r) => r.fleet_id));
  const fleets = await db
    .selectFrom('fleets')
    .select(['id', 'slug', 'pinned_release_id', 'update_window_json'])
    .where('id', 'in', fleetIds)
    .execute();
  const pinnedIds = unique(rows.flatMap((r) => (r.pinned_release_id === null ? [] : [r.pinned_release_id])));
  const pinned =
    pinnedIds.length === 0
      ? []
      : await db.selectFrom('releases').select(['id', 'commit']).where('id', 'in', pinnedIds).execute();
  const pinnedCommit = new Map(pinned.map((r) => [r.id, r.commit]));
  const osIds = unique(rows.flatMap((r) => (r.target_os_release_id === null ? [] : [r.target_os_release_id])));
  const osVersions = new Map(
    osIds.length === 0
      ? []
      : (await db.selectFrom('os_releases').select(['id', 'version']).where('id', 'in', osIds).execute()).map((r) => [
          r.id,
          r.version,
        ]),
  );
  const fleetById = new Map(fleets.map((f) => [f.id, f]));
  const releases = new Map(
    await Promise.all(fleets.map(async (f) => [f.id, await fleetTargetRelease(db, f)] as const)),
  );
  const targets = new Map([...releases].map(([id, release]) => [id, release?.commit ?? null]));
  const rollouts = await rolloutTargets(db, releases, rows);
  const at = Date.now();
  // A device's fleet exists (foreign key); one deleted between the two reads took its devices with it.
  return rows.flatMap((row) => {
    const fleet = fleetById.get(row.fleet_id);
    if (!fleet) return [];
    const pin = row.pinned_release_id === null ? null : (pinnedCommit.get(row.pinned_release_id) ?? null);
    const device: Device = {
      id: row.id,
      uuid: row.uuid,
      name: row.name,
      fleet: fleet.slug,
      deviceType: row.device_type,
      isOnline: isOnline(row.last_seen_at, at),
      lastSeenAt: row.last_seen_at,
      status: row.status,
      updateFailed: row.update_failed === 1,
      pinnedRelease: pin,
      runningRelease: row.running_release,
      targetRelease:
        pin ?? (rollouts.has(row.id) ? (rollouts.get(row.id) ?? null) : (targets.get(row.fleet_id) ?? null)),
      osVersion: row.os_version,
      osVariant: row.os_variant,
      agentVersion: row.agent_version,
      ipAddress: row.ip_address,
      macAddress: row.mac_address,
      metrics: {
        cpuUsage: row.cpu_usage,
        cpuTemp: row.cpu_temp,
        memoryUsage: row.memory_usage,
        memoryTotal: row.memory_total,
        storageUsage: row.storage_usage,
        storageTotal: row.storage_total,
      },
      services: parseServices(row.services_json),
      createdAt: row.created_at,
      rollback: parseRollback(row.rollback_json),
      targetOs: row.target_os_release_id === null ? null : (osVersions.get(row.target_os_release_id) ?? null),
      osUpdate: parseOsUpdate(row.os_update_json),
      updateBytes: {
        // PostgreSQL returns bigint columns as strings.
        last:
          row.update_release === null
            ? null
            : {
                release: row.update_release,
                downloaded: Number(row.update_bytes_downloaded),
                pullBytes: Number(row.update_pull_bytes),
              },
        total: { downloaded: Number(row.total_bytes_downloaded), pullBytes: Number(row.total_pull_bytes) },
      },
      updateWindow: effectiveWindow(row.update_window_json, fleet.update_window_json),
      updateWindowOpensAt: row.update_window_opens_at,
    };
    return [device];
  });
}

/**
 * The release commit of each device (by id) whose target a fleet's rollout decides (rollouts/rollout-overlay.ts):
 * per fleet with a rollout, its overlay and its releases' commits, and the batches of the rows in one query.
 */
async function rolloutTargets(
  db: Db,
  targets: ReadonlyMap<number, { id: number; commit: string } | null>,
  rows: readonly DeviceRow[],
): Promise<Map<number, string | null>> {
  const out = new Map<number, string | null>();
  for (const [fleetId, target] of targets) {
    // One query per fleet; the rest only for a fleet whose rollout has a say.
    const overlay = await rolloutOverlay(db, fleetId, target?.id ?? null);
    if (!overlay) continue;
    const ids = rows.filter((r) => r.fleet_id === fleetId && r.pinned_release_id === null).map((r) => r.id);
    if (ids.length === 0) continue;
    const previous =
      overlay.previousReleaseId === null
        ? null
        : ((
            await db
              .selectFrom('releases')
              .select('commit')
              .where('id', '=', overlay.previousReleaseId)
              .executeTakeFirst()
          )?.commit ?? null);
    const batches = new Map<number, number>();
    for (let i = 0; i < ids.length; i += 500) {
      const found = await db
        .selectFrom('rollout_devices')
        .select(['device_id', 'batch'])
        .where('rollout_id', '=', overlay.rolloutId)
        .where('device_id', 'in', ids.slice(i, i + 500))
        .execute();
      for (const r of found) batches.set(r.device_id, r.batch);
    }
    for (const id of ids) {
      const release = releaseUnder(overlay, { batch: batches.get(id), currentBatch: overlay.currentBatch });
      out.set(id, release === overlay.releaseId ? (target?.commit ?? null) : previous);
    }
  }
  return out;
}

export async function toDevice(db: Db, row: DeviceRow): Promise<Device> {
  const [device] = await toDevices(db, [row]);
  if (!device) throw new FlotillaError('DEVICE_NOT_FOUND', `no device "${row.uuid}"`);
  return device;
}

/** The stored report (validated when it arrived); anything unreadable shows as none rather than failing the page. */
function parseRollback(json: string | null): Device['rollback'] {
  if (json === null) return null;
  try {
    const r = deviceRollbackSchema.parse(JSON.parse(json));
    return {
      fromCommit: r.from_commit,
      toCommit: r.to_commit,
      reason: r.reason,
      service: r.service,
      logs: r.logs,
      at: r.at,
    };
  } catch {
    return null;
  }
}

function parseOsUpdate(json: string | null): Device['osUpdate'] {
  if (json === null) return null;
  const parsed = deviceOsUpdateSchema.safeParse(safeJson(json));
  if (!parsed.success) return null;
  const u = parsed.data;
  return { phase: u.phase, version: u.version, progress: u.progress, errorCode: u.error_code, error: u.error };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseServices(json: string): Device['services'] {
  try {
    return JSON.parse(json) as Device['services'];
  } catch {
    return {};
  }
}
