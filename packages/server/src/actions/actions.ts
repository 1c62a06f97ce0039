import type { ActionMessage, ActionResultMessage, DeviceAction } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';
import type { EventBus } from '../bus/event-bus.js';
import type { ConnectionHub } from '../device-connection/connection-hub.js';

export type ActionStatus = 'pending' | 'delivered' | 'done' | 'failed' | 'expired';

export interface DeviceActionRecord {
  id: number;
  action: DeviceAction;
  service: string | null;
  status: ActionStatus;
  error: { code: string; message: string } | null;
  createdAt: string;
  expiresAt: string;
}

/** The columns read back; derived from the table so the two cannot drift apart. */
type ActionRow = Pick<
  Selectable<Database['device_actions']>,
  'id' | 'action' | 'service' | 'force' | 'status' | 'error_code' | 'error_message' | 'created_at' | 'expires_at'
>;

function toRecord(row: ActionRow, at = new Date().toISOString()): DeviceActionRecord {
  const open = row.status === 'pending' || row.status === 'delivered';
  return {
    id: row.id,
    action: row.action as DeviceAction,
    service: row.service,
    status: open && row.expires_at <= at ? 'expired' : (row.status as ActionStatus),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? '' } : null,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

function toMessage(row: ActionRow): ActionMessage {
  const message: ActionMessage = { type: 'action', id: row.id, action: row.action as DeviceAction };
  if (row.service) message.service = row.service;
  if (row.force) message.force = true;
  return message;
}

const COLUMNS = [
  'id',
  'action',
  'service',
  'force',
  'status',
  'error_code',
  'error_message',
  'created_at',
  'expires_at',
] as const;

/** How long a node waits for another node to say it handed an action over, before answering "pending". */
const OTHER_NODE_GRACE_MS = 300;

/**
 * Queues an action for a device and hands it over at once when the device is connected, to this node or (through
 * the bus) to another; then waits up to `waitMs` for the device's answer. Waits are registered before the
 * hand-over, so an early answer is never missed.
 */
export async function createAction(
  db: Db,
  hub: ConnectionHub,
  bus: EventBus,
  deviceId: number,
  input: { action: DeviceAction; service?: string | undefined; force?: boolean | undefined; ttlSeconds: number },
  waitMs = 0,
): Promise<DeviceActionRecord> {
  const created = new Date();
  const row = await db
    .insertInto('device_actions')
    .values({
      device_id: deviceId,
      action: input.action,
      service: input.service ?? null,
      force: input.force ? 1 : 0,
      status: 'pending',
      error_code: null,
      error_message: null,
      created_at: created.toISOString(),
      expires_at: new Date(created.getTime() + input.ttlSeconds * 1000).toISOString(),
      delivered_at: null,
      completed_at: null,
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  const answer = waitMs > 0 ? hub.waitForAnswer(row.id, waitMs) : undefined;
  let delivered = false;
  if (hub.isConnected(deviceId)) {
    delivered = await handOver(db, hub, deviceId, row);
  } else if (bus.shared) {
    const elsewhere = hub.waitForDelivery(row.id, OTHER_NODE_GRACE_MS);
    bus.publish({ type: 'action', deviceId, actionId: row.id });
    delivered = await elsewhere;
  }
  if (!delivered) {
    hub.forget(row.id);
    return (await getAction(db, deviceId, row.id)) ?? toRecord(row);
  }
  if (answer) await answer;
  return (await getAction(db, deviceId, row.id)) ?? toRecord({ ...row, status: 'delivered' });
}

/**
 * Hands a pending action to the device's connection on this node. The action is claimed in the database first, so
 * that it reaches the device once even when a reconnect and another node's request race; it is given back when the
 * connection is gone by then.
 */
export async function handOver(db: Db, hub: ConnectionHub, deviceId: number, row: ActionRow): Promise<boolean> {
  const claimed = await db
    .updateTable('device_actions')
    .set({ status: 'delivered', delivered_at: new Date().toISOString() })
    .where('id', '=', row.id)
    .where('status', '=', 'pending')
    .where('expires_at', '>', new Date().toISOString())
    .executeTakeFirst();
  if (Number(claimed.numUpdatedRows) !== 1) return false;
  if (hub.send(deviceId, toMessage(row))) {
    hub.delivered(row.id);
    return true;
  }
  await db
    .updateTable('device_actions')
    .set({ status: 'pending', delivered_at: null })
    .where('id', '=', row.id)
    .where('status', '=', 'delivered')
    .execute();
  return false;
}

/** One pending action, for the node holding its device's connection (asked through the bus). */
export async function pendingAction(db: Db, deviceId: number, id: number): Promise<ActionRow | undefined> {
  return db
    .selectFrom('device_actions')
    .select(COLUMNS)
    .where('device_id', '=', deviceId)
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
}

/** What an action handed to a connection that ended unanswered is settled with (see failOrphanedActions). */
export const ORPHANED_ACTION_ERROR = {
  code: 'NETWORK_ERROR',
  message: 'the connection it was handed to ended before the device answered: it may or may not have run it',
} as const;

/**
 * What a (re)connect has to settle, in one read: whether the device has actions handed to an earlier connection
 * (`delivered_at` before `connectedAt`) and pending ones. Nearly every connect has neither, and then this read is
 * its only statement about actions: a node taking over thousands of devices at once (another node died) answers each
 * with one round trip instead of an update and a select.
 */
export async function openActions(
  db: Db,
  deviceId: number,
  connectedAt: string,
): Promise<{ orphaned: boolean; pending: boolean }> {
  const rows = await db
    .selectFrom('device_actions')
    .select(['status', 'delivered_at'])
    .where('device_id', '=', deviceId)
    .where('status', 'in', ['delivered', 'pending'])
    .execute();
  return {
    orphaned: rows.some(
      (row) => row.status === 'delivered' && row.delivered_at !== null && row.delivered_at < connectedAt,
    ),
    pending: rows.some((row) => row.status === 'pending'),
  };
}

/**
 * On (re)connect, before anything is handed to the new connection: actions handed to an earlier connection of the
 * device (`delivered_at` before `connectedAt`, this connection's start) and never answered are settled failed,
 * returning their ids. INVARIANT: such an answer can no longer come, since a device answers on the connection an
 * action came on and has one connection at a time; so without this an action claimed by a node that died before its
 * message left (or whose answer died with it) would stay "delivered" until it expired, its fate unknown. An answer
 * that does come late (from a connection not yet closed on another node) still records the truth.
 */
export async function failOrphanedActions(db: Db, deviceId: number, connectedAt: string): Promise<number[]> {
  const rows = await db
    .updateTable('device_actions')
    .set({
      status: 'failed',
      error_code: ORPHANED_ACTION_ERROR.code,
      error_message: ORPHANED_ACTION_ERROR.message,
      completed_at: new Date().toISOString(),
    })
    .where('device_id', '=', deviceId)
    .where('status', '=', 'delivered')
    .where('delivered_at', '<', connectedAt)
    .returning('id')
    .execute();
  return rows.map((row) => row.id);
}

/** On (re)connect: every pending, unexpired action of the device, oldest first. */
export async function deliverPending(db: Db, hub: ConnectionHub, deviceId: number): Promise<number> {
  const at = new Date().toISOString();
  const rows = await db
    .selectFrom('device_actions')
    .select(COLUMNS)
    .where('device_id', '=', deviceId)
    .where('status', '=', 'pending')
    .where('expires_at', '>', at)
    .orderBy('id')
    .execute();
  let sent = 0;
  for (const row of rows) {
    if (!hub.isConnected(deviceId)) break;
    if (await handOver(db, hub, deviceId, row)) sent += 1;
  }
  return sent;
}

/** Records a device's answer; only the device the action was for can settle it. */
export async function completeAction(db: Db, deviceId: number, result: ActionResultMessage): Promise<void> {
  await db
    .updateTable('device_actions')
    .set({
      status: result.ok ? 'done' : 'failed',
      error_code: result.error?.code ?? null,
      error_message: result.error?.message ?? null,
      completed_at: new Date().toISOString(),
    })
    .where('id', '=', result.id)
    .where('device_id', '=', deviceId)
    .execute();
}

export async function getAction(db: Db, deviceId: number, id: number): Promise<DeviceActionRecord | undefined> {
  const row = await db
    .selectFrom('device_actions')
    .select(COLUMNS)
    .where('device_id', '=', deviceId)
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? toRecord(row) : undefined;
}

export async function listActions(db: Db, deviceId: number, limit = 50): Promise<DeviceActionRecord[]> {
  const rows = await db
    .selectFrom('device_actions')
    .select(COLUMNS)
    .where('device_id', '=', deviceId)
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.map((r) => toRecord(r));
}
