import { sql } from 'kysely';
import type { Db } from './database.js';

/**
 * Target-state caches compare these counters with the ones they computed from. INVARIANT: every write that can
 * change what a device must run calls one of these in the same request, or devices keep an old state, and calls
 * it after the change itself (or in its transaction): whoever reads the counters and then the data sees every
 * change the counters count, which the announcement of changes to connected devices relies on
 * (device-connection/target-watcher.ts).
 */
export async function bumpFleet(db: Db, fleetId: number): Promise<void> {
  await db.updateTable('fleets').set({ revision: sql`revision + 1` }).where('id', '=', fleetId).execute();
  tellLocal({ kind: 'fleet', id: fleetId });
}

/**
 * Locks the fleet's row until the transaction `trx` ends, changing nothing: a no-op update (a row lock on
 * PostgreSQL, the write lock on SQLite). Serialises writes that read the fleet and then act on its devices or
 * releases (releases.ts: a release's next version; devices.ts: a device moving in while an OS target is set).
 */
export async function lockFleet(trx: Db, fleetId: number): Promise<void> {
  await trx.updateTable('fleets').set({ revision: sql`revision` }).where('id', '=', fleetId).execute();
}

export async function bumpDevice(db: Db, deviceId: number): Promise<void> {
  await db.updateTable('devices').set({ revision: sql`revision + 1` }).where('id', '=', deviceId).execute();
  tellLocal({ kind: 'device', id: deviceId });
}

/** `bumpDevice` for many devices: one statement per 500. */
export async function bumpDevices(db: Db, deviceIds: readonly number[]): Promise<void> {
  for (let i = 0; i < deviceIds.length; i += 500) {
    const chunk = deviceIds.slice(i, i + 500);
    await db.updateTable('devices').set({ revision: sql`revision + 1` }).where('id', 'in', chunk).execute();
    for (const id of chunk) tellLocal({ kind: 'device', id });
  }
}

export interface RevisionBump {
  kind: 'fleet' | 'device';
  id: number;
}

const localListeners = new Set<(bump: RevisionBump) => void>();

/**
 * Bumps made by this process, told as they are written (before their commit): PostgreSQL announces a bump to every
 * node once committed, a few milliseconds later, so a cache of this node that waited for that notice would answer
 * the old state to a poll right after the write that returned (device-api/poll-cache.ts). Heard by every server of
 * the process (tests run several): a spare drop costs one read. Returns the unsubscribe function.
 */
export function hearLocalBumps(listener: (bump: RevisionBump) => void): () => void {
  localListeners.add(listener);
  return () => localListeners.delete(listener);
}

/**
 * A device's key, fleet or existence changed by this process without a revision bump (a delete, a key exchange):
 * told like a bump, for the same reason (migration 0018's notice comes back later).
 */
export function tellLocal(bump: RevisionBump): void {
  for (const listener of localListeners) listener(bump);
}
