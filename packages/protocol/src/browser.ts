import { z } from 'zod';
import { userSchema, deviceSchema } from './user-api.js';

/**
 * What the web dashboard (packages/dashboard) needs beyond the REST API the CLI uses: a session held in a cookie,
 * protection of that cookie against cross-site requests, and live device news. The dashboard holds no privilege the
 * API does not give the signed-in user; every other call is an ordinary USER_ROUTES entry.
 *
 * Cookie sessions: `POST /api/v1/auth/browser-session` checks the password exactly as `/auth/login` does (same
 * guess limiter) and sets SESSION_COOKIE (HttpOnly, SameSite=Strict, Path=/, Secure when the server is reached over
 * HTTPS). A request authenticated by that cookie with a method other than GET/HEAD must carry CSRF_HEADER with the
 * session's CSRF token (given at sign-in and by `GET /api/v1/auth/csrf`), else 403 FORBIDDEN: a cross-site page can
 * make the browser send the cookie, never read or set that header. A WebSocket upgrade authenticated by the cookie
 * must come from the server's own origin (the Origin header). Bearer credentials work as before and need neither.
 */
export const SESSION_COOKIE = 'flotilla_session';
export const CSRF_HEADER = 'x-flotilla-csrf';

export const browserSessionResponseSchema = z.object({
  user: userSchema,
  csrfToken: z.string(),
  expiresAt: z.string(),
});
export type BrowserSessionResponse = z.infer<typeof browserSessionResponseSchema>;

export const csrfTokenResponseSchema = z.object({ csrfToken: z.string() });

/**
 * Device status as the dashboard filters it, derived by the server from what devices report (server
 * `devices/device-status.ts`): `online` = polled, reported or connected within the last 30 minutes (`isOnline`);
 * `offline` = not online; `updating` = online and reporting `Updating` (or `Downloading`, `Installing`,
 * `Applying changes`, `Waiting for update window`: an update downloaded, waiting for its maintenance window); `failed` = online and reporting `Update failed` or `update_failed: true` (Device
 * `updateFailed`), failed winning over updating. Updating and failed devices are online too.
 */
export const deviceStatusFilterSchema = z.enum(['online', 'offline', 'updating', 'failed']);
export type DeviceStatusFilter = z.infer<typeof deviceStatusFilterSchema>;
/** Reported statuses (compared case-insensitively) that make an online device `updating`. */
export const UPDATING_STATUSES: readonly string[] = [
  'updating',
  'downloading',
  'installing',
  'applying changes',
  'waiting for update window',
];
/**
 * Reported statuses (compared case-insensitively) that make an online device `failed`; so does a report's
 * `update_failed: true` (the balena Supervisor says it that way), until a report says `update_failed: false`.
 */
export const FAILED_STATUSES: readonly string[] = ['update failed'];

/**
 * Query of `GET /api/v1/devices`: everything optional, so older clients (`?fleet=`) keep working. Paging is by
 * offset over a stable order (the sort key, then the id).
 */
export const listDevicesQuerySchema = z.object({
  fleet: z.string().min(1).max(100).optional(),
  /** Matches a name, a UUID prefix, or a tag value (case-insensitive substring for names and tags). */
  search: z.string().min(1).max(100).optional(),
  status: deviceStatusFilterSchema.optional(),
  /** A release commit (or its 7+ character prefix) the device runs. */
  release: z.string().min(1).max(64).optional(),
  /**
   * `name` (case-insensitive), `lastSeen` (never seen counts as oldest), `status` (online and idle, updating, failed,
   * offline) or `created`; `-` first descends. Ties, and no sort, go by id.
   */
  sort: z.enum(['name', '-name', 'lastSeen', '-lastSeen', 'status', '-status', 'created', '-created']).optional(),
  /** Devices per page; 100 when absent. A client that needs them all asks page after page until `total`. */
  limit: z.coerce.number().int().min(1).max(1_000).optional(),
  offset: z.coerce.number().int().min(0).max(10_000_000).optional(),
});
export type ListDevicesQuery = z.input<typeof listDevicesQuerySchema>;

/** One page of devices; `total` counts every device matching the filters. */
export const devicePageSchema = z.object({ items: z.array(deviceSchema), total: z.number().int() });

/**
 * `GET /api/v1/fleets/:slug/events`: Server-Sent Events about the fleet's devices, the live feed of the device
 * table and the device page. `event: device`, `data:` a Device as `GET /devices/:uuid` gives it, whenever the
 * device changes (a state report, going online or offline, an update finishing, a rename, a pin …);
 * `event: device-removed`, `data: {uuid}`. Comments (`: heartbeat`) keep the connection alive. A client that
 * reconnects refetches what it shows: events missed meanwhile are not replayed.
 */
export const deviceRemovedEventSchema = z.object({ uuid: z.string() });

/**
 * `GET /api/v1/fleet-counts/events`: Server-Sent Events with the device counts by status of every fleet the caller
 * sees, the live figures of the fleets page. On open, `event: counts` for each such fleet; then one for a fleet
 * whenever its figures changed (a device reporting, going offline, joining, leaving), coalesced to at most one per
 * fleet per second. A fleet created after the stream opened is not in it: the client reconnects to see it. A client
 * that reconnects gets every fleet's figures again.
 */
export const fleetCountsSchema = z.object({
  /** The fleet's slug. */
  fleet: z.string(),
  total: z.number().int(),
  online: z.number().int(),
  offline: z.number().int(),
  updating: z.number().int(),
  failed: z.number().int(),
});
export type FleetCounts = z.infer<typeof fleetCountsSchema>;

/**
 * `event: fleet-changed` on `GET /fleets/:slug/events`, `data: {targetRelease}`: the fleet's release changed (a
 * deploy, a pin), so every device following it has a new target. One event for the whole fleet instead of one per
 * device: the client refetches the rows it shows (and the fleet).
 */
export const fleetChangedEventSchema = z.object({ targetRelease: z.string().nullable() });
