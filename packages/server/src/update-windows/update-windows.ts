import { checkUpdateWindow, updateWindowSchema, type UpdateWindow } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { bumpDevice, bumpFleet } from '../db/revisions.js';

/**
 * Maintenance windows stored on fleets (their devices' default) and devices (in place of the fleet's). A write
 * changes what the device is told in its target state (`update_window`), so it bumps the revision like any target
 * change.
 */

/** A stored window, or null. WARNING: a hand-edited value that no longer parses counts as none, never as an error. */
export function parseStoredWindow(json: string | null): UpdateWindow | null {
  if (json === null) return null;
  try {
    const parsed = updateWindowSchema.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** The window a device applies updates in: its own, else its fleet's. */
export function effectiveWindow(
  deviceJson: string | null,
  fleetJson: string | null,
): (UpdateWindow & { source: 'device' | 'fleet' }) | null {
  const own = parseStoredWindow(deviceJson);
  if (own) return { ...own, source: 'device' };
  const fleet = parseStoredWindow(fleetJson);
  return fleet ? { ...fleet, source: 'fleet' } : null;
}

/** Only the window's own fields, in a fixed order: what is stored is what the target state says. */
const canonical = (window: UpdateWindow): string =>
  JSON.stringify({ cron: window.cron.trim(), durationSeconds: window.durationSeconds, timezone: window.timezone });

/** Sets (`window`) or clears (null) the fleet's window; `UPDATE_WINDOW_INVALID` for a window that cannot be read. */
export async function setFleetUpdateWindow(db: Db, fleetId: number, window: UpdateWindow | null): Promise<void> {
  if (window) checkUpdateWindow(window);
  await db
    .updateTable('fleets')
    .set({ update_window_json: window ? canonical(window) : null })
    .where('id', '=', fleetId)
    .execute();
  await bumpFleet(db, fleetId);
}

/** Sets (`window`) or clears (null) the device's own window. */
export async function setDeviceUpdateWindow(db: Db, deviceId: number, window: UpdateWindow | null): Promise<void> {
  if (window) checkUpdateWindow(window);
  await db
    .updateTable('devices')
    .set({ update_window_json: window ? canonical(window) : null })
    .where('id', '=', deviceId)
    .execute();
  await bumpDevice(db, deviceId);
}
