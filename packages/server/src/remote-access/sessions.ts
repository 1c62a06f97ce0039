import type { RemoteSession, RemoteSessionKind, StreamRequest } from '@flotilla/protocol';
import { orgIds, type UserPrincipal } from '../auth/principal.js';
import { now, type Db } from '../db/database.js';
import { visibleDevice } from '../devices/devices.js';

/** What a new audit record says before the stream opens. */
export interface SessionStart {
  id: string;
  organizationId: number;
  device: { id: number; uuid: string; name: string };
  user: { id: number; username: string } | null;
  kind: RemoteSessionKind;
  request: StreamRequest;
  relayNode: string;
  remoteAddress: string | null;
}

/** How the audit log names what a stream reaches: `host`, `service main`, `port 22`, `service db port 5432`. */
export function describeTarget(request: StreamRequest): string {
  const where = request.service ? `service ${request.service}` : 'host';
  if (request.kind === 'tcp') return request.service ? `${where} port ${request.port}` : `port ${request.port}`;
  return request.command ? `${where}: ${request.command.slice(0, 200)}` : where;
}

export async function recordSessionStart(db: Db, start: SessionStart): Promise<void> {
  await db
    .insertInto('remote_sessions')
    .values({
      id: start.id,
      organization_id: start.organizationId,
      device_id: start.device.id,
      device_uuid: start.device.uuid,
      device_name: start.device.name,
      user_id: start.user?.id ?? null,
      username: start.user?.username ?? null,
      kind: start.kind,
      target: describeTarget(start.request),
      request_json: JSON.stringify(start.request),
      relay_node: start.relayNode,
      remote_address: start.remoteAddress,
      started_at: now(),
      bytes_in: 0,
      bytes_out: 0,
    })
    .execute();
}

export async function recordSessionEnd(
  db: Db,
  id: string,
  end: { bytesIn: number; bytesOut: number; reason: string },
): Promise<void> {
  await db
    .updateTable('remote_sessions')
    .set({ ended_at: now(), bytes_in: end.bytesIn, bytes_out: end.bytesOut, end_reason: end.reason.slice(0, 300) })
    .where('id', '=', id)
    .where('ended_at', 'is', null)
    .execute();
}

/** Sessions a node left open when it stopped without closing them (killed, power cut): ended as of its restart. */
export async function closeAbandonedSessions(db: Db, relayNode: string): Promise<number> {
  const result = await db
    .updateTable('remote_sessions')
    .set({ ended_at: now(), end_reason: 'server node restarted' })
    .where('relay_node', '=', relayNode)
    .where('ended_at', 'is', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The stream a device dials for, if it is still open (not ended) and its own. */
export async function openSessionOf(db: Db, id: string, deviceId: number) {
  return db
    .selectFrom('remote_sessions')
    .select(['id', 'relay_node', 'request_json', 'kind'])
    .where('id', '=', id)
    .where('device_id', '=', deviceId)
    .where('ended_at', 'is', null)
    .executeTakeFirst();
}

/** The audit log of the organizations the user belongs to (any role), newest first. */
export async function listSessions(
  db: Db,
  user: UserPrincipal,
  query: { device?: string | undefined; limit: number },
): Promise<RemoteSession[]> {
  const ids = orgIds(user);
  if (ids.length === 0) return [];
  let select = db
    .selectFrom('remote_sessions')
    .selectAll()
    .where('organization_id', 'in', ids)
    .orderBy('started_at', 'desc')
    .orderBy('id')
    .limit(query.limit);
  if (query.device) select = select.where('device_id', '=', (await visibleDevice(db, user, query.device)).id);
  const rows = await select.execute();
  return rows.map((row) => ({
    id: row.id,
    kind: row.kind,
    device: { uuid: row.device_uuid, name: row.device_name },
    user: row.user_id === null ? null : { id: row.user_id, username: row.username ?? '' },
    target: row.target,
    remoteAddress: row.remote_address,
    startedAt: row.started_at,
    endedAt: row.ended_at,
    bytesIn: Number(row.bytes_in),
    bytesOut: Number(row.bytes_out),
    endReason: row.end_reason,
  }));
}

/** Removes audit records of sessions that ended before `before` (ISO time); returns how many. */
export async function pruneSessions(db: Db, before: string): Promise<number> {
  const result = await db
    .deleteFrom('remote_sessions')
    .where('ended_at', 'is not', null)
    .where('ended_at', '<', before)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
