import type { DeviceLogLine, LogEntry } from '@flotilla/protocol';
import type { Insertable, Selectable } from 'kysely';
import type { Db } from '../db/database.js';
import type { Database } from '../db/schema.js';

/** Lines kept per device unless configured otherwise. */
export const DEFAULT_LOG_RETENTION = 1_000;

type LogRow = Omit<Selectable<Database['device_logs']>, 'device_id'>;
type LogInsert = Insertable<Database['device_logs']>;

/**
 * Rows per insert statement, largest first: a flush of n rows is cut into powers of two up to 512 (7 parameters a
 * row, well inside SQLite's and PostgreSQL's limits), so inserts come in ten SQL texts that stay prepared
 * (db/database.ts keeps statements by text) instead of one new text per row count.
 */
const CHUNK_ROWS = [512, 256, 128, 64, 32, 16, 8, 4, 2, 1];

function idRange(ids: readonly number[]): { firstId: number; lastId: number } {
  return { firstId: ids[0] ?? 0, lastId: ids[ids.length - 1] ?? 0 };
}

/** `rows` cut as CHUNK_ROWS says. */
export function chunkRows<T>(rows: readonly T[]): T[][] {
  const chunks: T[][] = [];
  let at = 0;
  for (const size of CHUNK_ROWS) for (; rows.length - at >= size; at += size) chunks.push(rows.slice(at, at + size));
  return chunks;
}

interface PendingBatch {
  rows: readonly LogInsert[];
  resolve: (ids: { firstId: number; lastId: number }) => void;
  reject: (error: unknown) => void;
}

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
  /** Batches waiting for the next group commit (`store`). */
  private pending: PendingBatch[] = [];
  private flushing = false;

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
    const { firstId, lastId } = await this.store(rows.slice(-this.retention));
    // Pruning costs a walk of `retention` index entries, so it runs once a tenth of the retention has come in (per
    // node): storage holds at most that many lines more than is shown, and reads never show more (`tail`).
    const since = (this.sincePrune.get(deviceId) ?? 0) + Math.min(rows.length, this.retention);
    if (since >= Math.ceil(this.retention / 10)) {
      this.sincePrune.delete(deviceId);
      await this.prune(deviceId);
    } else this.sincePrune.set(deviceId, since);
    return { entries: rows.map((r) => toLogEntry({ ...r, id: 0 })), firstId, lastId };
  }

  /**
   * Queues rows for the next commit and resolves with the first and last id they got. Group commit: the batches of
   * every post that arrives while a commit runs (or in the same turn of the event loop) go in the next one, a few
   * multi-row statements in one transaction, instead of a statement and a commit per post: at 2,000 devices posting
   * every second, the per-statement cost (building, preparing, committing) was most of the server's time.
   */
  private store(rows: readonly LogInsert[]): Promise<{ firstId: number; lastId: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ rows, resolve, reject });
      if (this.pending.length === 1 && !this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0) {
      const batches = this.pending.splice(0, this.pending.length);
      try {
        const ids = await this.insert(batches.flatMap((b) => b.rows));
        // INVARIANT: ids grow in the order of the rows of one transaction (SQLite's rowid, PostgreSQL's sequence),
        // so sorted they are the rows' ids in order, batch after batch; another node's rows may fall between them on
        // PostgreSQL, but readers filter by device.
        let at = 0;
        for (const batch of batches) {
          batch.resolve(idRange(ids.slice(at, at + batch.rows.length)));
          at += batch.rows.length;
        }
      } catch (error) {
        // One batch can fail them all (its device deleted meanwhile: a foreign key): each is tried alone, so only
        // its own post fails, as without the group commit.
        if (batches.length === 1) batches[0]!.reject(error);
        else
          for (const batch of batches)
            await this.insert(batch.rows).then((ids) => batch.resolve(idRange(ids)), batch.reject);
      }
    }
    this.flushing = false;
  }

  /** One transaction; the ids the rows got, ascending. */
  private async insert(rows: readonly LogInsert[]): Promise<number[]> {
    const ids: number[] = [];
    await this.db.transaction().execute(async (trx) => {
      for (const chunk of chunkRows(rows))
        for (const { id } of await trx.insertInto('device_logs').values(chunk).returning('id').execute()) ids.push(id);
    });
    return ids.sort((a, b) => a - b);
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
