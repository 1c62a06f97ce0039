import { createHash } from 'node:crypto';
import { type ComposeFile, FlotillaError, type UpdateWindow } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { fleetTargetRelease } from '../fleets/fleets.js';
import { releaseUnder, rolloutOverlay, standingOf } from '../rollouts/rollout-overlay.js';
import { effectiveWindow } from '../update-windows/update-windows.js';
import { targetOsOf } from '../os-releases/os-releases.js';
import { buildTargetState } from './build-target-state.js';
import type { DevicePart, DevicePartReader } from './device-part.js';
import { type CachedState, type FleetPart, type ReleasePart, TargetStateCache } from './target-state-cache.js';

async function loadRelease(db: Db, releaseId: number | null): Promise<ReleasePart | null> {
  if (releaseId === null) return null;
  const row = await db
    .selectFrom('releases')
    .select(['id', 'commit', 'composition_json'])
    .where('id', '=', releaseId)
    .executeTakeFirst();
  if (!row) return null;
  const services = await db
    .selectFrom('release_services')
    .select(['id', 'name', 'image'])
    .where('release_id', '=', row.id)
    .orderBy('id')
    .execute();
  return { id: row.id, commit: row.commit, composition: JSON.parse(row.composition_json) as ComposeFile, services };
}

async function loadFleetPart(db: Db, fleetId: number): Promise<FleetPart> {
  const fleet = await db
    .selectFrom('fleets')
    .select(['id', 'uuid', 'name', 'pinned_release_id', 'update_window_json'])
    .where('id', '=', fleetId)
    .executeTakeFirstOrThrow();
  const release = await loadRelease(db, (await fleetTargetRelease(db, fleet))?.id ?? null);
  const overlay = await rolloutOverlay(db, fleet.id, release?.id ?? null);
  const env = await db
    .selectFrom('env_vars')
    .select(['name', 'value', 'service'])
    .where('fleet_id', '=', fleet.id)
    .where('device_id', 'is', null)
    .orderBy('id')
    .execute();
  const config = await db
    .selectFrom('config_vars')
    .select(['name', 'value'])
    .where('fleet_id', '=', fleet.id)
    .where('device_id', 'is', null)
    .orderBy('id')
    .execute();
  const part: FleetPart = {
    fleet: { id: fleet.id, uuid: fleet.uuid, name: fleet.name },
    release,
    env,
    config,
    updateWindowJson: fleet.update_window_json,
  };
  if (overlay) part.rollout = { overlay, previous: await loadRelease(db, overlay.previousReleaseId) };
  return part;
}

/** The release of an unpinned device: the fleet's, unless a rollout has a say (rollouts/rollout-overlay.ts). */
async function unpinnedRelease(db: Db, fleetPart: FleetPart, deviceId: number): Promise<ReleasePart | null> {
  if (!fleetPart.rollout) return fleetPart.release;
  const { overlay, previous } = fleetPart.rollout;
  const id = releaseUnder(overlay, await standingOf(db, overlay.rolloutId, deviceId));
  return id === overlay.releaseId ? fleetPart.release : previous;
}

async function computeTargetState(
  db: Db,
  cache: TargetStateCache,
  readDevice: DevicePartReader,
  row: { id: number; fleet_id: number; fleet_revision: number; part?: DevicePart | undefined },
): Promise<string> {
  let fleetPart = cache.fleetPart(row.fleet_id, row.fleet_revision);
  if (!fleetPart) {
    fleetPart = await loadFleetPart(db, row.fleet_id);
    cache.setFleetPart(row.fleet_id, row.fleet_revision, fleetPart);
  }
  const device = row.part ?? (await readDevice(row.id));
  if (!device) throw new FlotillaError('DEVICE_NOT_FOUND', 'the device was deleted');
  const release =
    device.pinnedReleaseId === null
      ? await unpinnedRelease(db, fleetPart, row.id)
      : await loadRelease(db, device.pinnedReleaseId);
  const state = buildTargetState({
    device: { uuid: device.uuid, name: device.name },
    fleet: fleetPart.fleet,
    release,
    fleetEnv: fleetPart.env,
    deviceEnv: device.env,
    fleetConfig: fleetPart.config,
    deviceConfig: device.config,
    updateWindow: stripSource(effectiveWindow(device.updateWindowJson, fleetPart.updateWindowJson)),
    os: device.targetOsReleaseId === null ? undefined : await targetOsOf(db, row.id),
  });
  return JSON.stringify(state);
}

/** The device is told the window only, not where it was set. */
function stripSource(window: (UpdateWindow & { source: string }) | null): UpdateWindow | null {
  if (!window) return null;
  const { source: _source, ...rest } = window;
  return rest;
}

export function etagOf(body: string): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}

/**
 * Devices' target states: computed from the database, kept in `cache` while the revisions they were computed from
 * hold. One per app; the device routes and the connected-device watcher share it.
 */
export class TargetStates {
  constructor(
    private readonly db: Db,
    private readonly readDevice: DevicePartReader,
    readonly cache = new TargetStateCache(),
  ) {}

  /**
   * Target state for a device whose identity was checked; from the cache when the revisions still match. `row.part`:
   * the device's part, read with those revisions (poll-lookup.ts `withPart`), else read here.
   */
  async for(
    uuid: string,
    row: { id: number; fleet_id: number; revision: number; fleet_revision: number; part?: DevicePart | undefined },
  ): Promise<{ entry: CachedState; hit: boolean }> {
    const cached = this.cache.get(uuid, row.fleet_id, row.fleet_revision, row.revision);
    if (cached) return { entry: cached, hit: true };
    const body = await computeTargetState(this.db, this.cache, this.readDevice, row);
    const entry: CachedState = {
      fleetId: row.fleet_id,
      fleetRevision: row.fleet_revision,
      deviceRevision: row.revision,
      etag: etagOf(body),
      body,
    };
    this.cache.set(uuid, entry);
    return { entry, hit: false };
  }
}

/** `If-None-Match` may list several tags or `*`; weak comparison is fine for a GET. */
export function matchesEtag(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}
