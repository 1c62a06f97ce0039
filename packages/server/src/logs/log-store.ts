import type { DeviceLogLine, LogEntry } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';

/** Lines kept per device unless configured otherwise. */
export const DEFAULT_LOG_RETENTION = 1_000;

type LogRow = Omit<Selectable<Database['device_logs']>, 'device_id'>;

export function toLogEntry(row: LogRow): LogEntry {
  return {
    timestamp: Number(row.timestamp),
    createdAt: Number(row.created_at),
    message: row.message,
    isSystem: row.is_system === 1,
    isStdErr: row.is_std_err === 1,
    serviceName: row.service_name,
  };
}

/**
 * Recent logs per device, bounded: once a tenth of `retention` lines came in, lines beyond the newest `retention` are
 * deleted, so a chatty device costs a fixed amount of database space (at most 1.1 × `retention` lines per node).
 */
export class LogStore {
  /** Lines this node stored per device since it last pruned that device. */
  private readonly sincePrune = new Map<number, number>();

  constructor(
    private readonly db: Db,
    private readonly retention = DEFAULT_LOG_RETENTION,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Stores a batch from a device and returns all of it as the API shows it, with the ids the stored part got (first
   * and last; the rows of one batch are inserted in order). `serviceNames` is asked only when a line carries a serviceId
   * but no serviceName (balenaOS devices); Flotilla agents name the service on every line, so their batches cost no
   * lookup.
   */
  async append(
    deviceId: number,
    lines: readonly DeviceLogLine[],
    serviceNames: () => Promise<ReadonlyMap<number, string>>,
  ): Promise<{ entries: LogEntry[]; firstId: number; lastId: number }> {
    if (lines.length === 0) return { entries: [], firstId: 0, lastId: 0 };
    const createdAt = this.now();
    const names = lines.some((l) => l.serviceName === undefined && l.serviceId !== undefined)
      ? await serviceNames()
      : undefined;
    const rows = lines.map((line) => ({
      device_id: deviceId,
      timestamp: line.timestamp,
      created_at: createdAt,
      // Container output may hold NUL bytes; PostgreSQL text cannot, and a log line is no worse without them.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what is removed
      message: line.message.replace(/\u0000/g, ''),
      is_system: line.isSystem ? 1 : 0,
      is_std_err: line.isStdErr ? 1 : 0,
      service_name:
        // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is what is removed
        line.serviceName?.replace(/\u0000/g, '') ??
        (line.serviceId !== undefined ? (names?.get(line.serviceId) ?? null) : null),
    }));
    // Only the newest `retention` lines of a batch could survive pruning, so only those are stored; live followers
    // still get every line (the returned entries).
    const stored = rows.slice(-this.retention);
    // Parameter limits (SQLite 32k, PostgreSQL 65k) allow a few thousand rows of 7 columns per statement.
    let firstId = Number.POSITIVE_INFINITY;
    let lastId = 0;
    for (let i = 0; i < stored.length; i += 500) {
      const ids = await this.db
        .insertInto('device_logs')
        .values(stored.slice(i, i + 500))
        .returning('id')
        .execute();
      for (const { id } of ids) {
        firstId = Math.min(firstId, id);
        lastId = Math.max(lastId, id);
      }
    }
    // Pruning costs a walk of `retention` index entries, so it runs once a tenth of the retention has come in (per
    // node): storage holds at most that many lines more than is shown, and reads never show more (`tail`).
    const since = (this.sincePrune.get(deviceId) ?? 0) + stored.length;
    if (since >= Math.ceil(this.retention / 10)) {
      this.sincePrune.delete(deviceId);
      await this.prune(deviceId);
    } else this.sincePrune.set(deviceId, since);
    return { entries: rows.map((r) => toLogEntry({ ...r, id: 0 })), firstId, lastId };
  }

  /** The device's lines with ids in (afterId, lastId], oldest first: what another server node stored just now. */
  async range(deviceId: number, afterId: number, lastId: number): Promise<LogEntry[]> {
    const rows = await this.db
      .selectFrom('device_logs')
      .select(['id', 'timestamp', 'created_at', 'message', 'is_system', 'is_std_err', 'service_name'])
      .where('device_id', '=', deviceId)
      .where('id', '>', afterId)
      .where('id', '<=', lastId)
      .orderBy('id')
      .execute();
    return rows.map(toLogEntry);
  }

  /** The newest `tail` lines (oldest first), optionally of one service. */
  async tail(deviceId: number, tail: number, service?: string): Promise<LogEntry[]> {
    let query = this.db
      .selectFrom('device_logs')
      .select(['id', 'timestamp', 'created_at', 'message', 'is_system', 'is_std_err', 'service_name'])
      .where('device_id', '=', deviceId);
    if (service) query = query.where('service_name', '=', service);
    const rows = await query.orderBy('id', 'desc').limit(Math.min(tail, this.retention)).execute();
    return rows.reverse().map(toLogEntry);
  }

  async prune(deviceId: number): Promise<void> {
    const boundary = await this.db
      .selectFrom('device_logs')
      .select('id')
      .where('device_id', '=', deviceId)
      .orderBy('id', 'desc')
      .offset(this.retention)
      .limit(1)
      .executeTakeFirst();
    if (boundary)
      await this.db
        .deleteFrom('device_logs')
        .where('device_id', '=', deviceId)
        .where('id', '<=', boundary.id)
        .execute();
  }
}
