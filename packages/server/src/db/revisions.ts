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
}

export async function bumpDevice(db: Db, deviceId: number): Promise<void> {
  await db.updateTable('devices').set({ revision: sql`revision + 1` }).where('id', '=', deviceId).execute();
}
