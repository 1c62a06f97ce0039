import type { DeviceLogLine, LogEntry } from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { Db, OpenedDatabase } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { type InsertLogs, type LogInsert, logInserts } from './log-inserts.js';

/** Lines kept per device unless configured otherwise. */
export const DEFAULT_LOG_RETENTION = 1_000;

type LogRow = Omit<Selectable<Database['device_logs']>, 'device_id'>;

/**
 * Most rows in one group commit. The commit runs on the event loop (SQLite) or its rows are built there
 * (PostgreSQL), and the posts it answers are all answered in the same turn; bounded, so a backlog after a stall is
 * worked off in commits of a few milliseconds with requests read and answered between them, instead of one long
 * stall that makes the next backlog larger.
 */
export const MAX_COMMIT_ROWS = 1_000;

/** Devices pruned in one turn of the event loop before the pruner lets requests run. */
const PRUNES_A_TURN = 16;

interface PendingBatch {
  deviceId: number;
  rows: readonly LogInsert[];
  resolve: (ids: { firstId: number; lastId: number }) => void;
  reject: (error: unknown) => void;
}

export interface LogStoreOptions {
  /** Lines kept per device. */
  retention?: number;
  now?: () => number;
  /** What a background prune that failed is told to (it is tried again once the device logs more). */
  onPruneError?: (error: unknown) => void;
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

const idRange = (ids: readonly number[]) => ({ firstId: ids[0] ?? 0, lastId: ids[ids.length - 1] ?? 0 });

/**
 * Recent logs per device, bounded: once a tenth of `retention` lines came in, lines beyond the newest `retention` are
 * deleted, so a chatty device costs a fixed amount of database space (at most 1.1 × `retention` lines per node, plus
 * what arrives before the background pruner gets to it).
 */
export class LogStore {
  private readonly db: Db;
  private readonly retention: number;
  private readonly now: () => number;
  private readonly onPruneError: (error: unknown) => void;
  private readonly insert: InsertLogs;
  private readonly maxInFlight: number;
  /** Lines this node stored per device since it last pruned that device. */
  private readonly sincePrune = new Map<number, number>();
  /** Devices due for pruning, in the order they became due. */
  private readonly duePrunes = new Set<number>();
  private pruning: Promise<void> | undefined;
  private closed = false;
  /** Batches waiting for a group commit (`store`). */
  private pending: PendingBatch[] = [];
  /** Devices with a batch in a commit on its way: their next batches wait for it, so their lines stay in order. */
  private readonly committing = new Set<number>();
  private inFlight = 0;
  private scheduled = false;

  constructor(database: Pick<OpenedDatabase, 'db' | 'sqlite'>, options: LogStoreOptions = {}) {
    this.db = database.db;
    this.retention = options.retention ?? DEFAULT_LOG_RETENTION;
    this.now = options.now ?? Date.now;
    this.onPruneError = options.onPruneError ?? (() => undefined);
    ({ insert: this.insert, maxInFlight: this.maxInFlight } = logInserts(database));
  }

  /**
   * Stores a batch from a device and resolves once it is committed, with the ids the stored part got (first and
   * last; the rows of one batch are stored in order) and its lines as the API shows them (built only when asked: only
   * live followers need them). `serviceNames` is asked only when a line carries a serviceId but no serviceName
   * (balenaOS devices); Flotilla agents name the service on every line, so their batches cost no lookup.
   */
  async append(
    deviceId: number,
    lines: readonly DeviceLogLine[],
    serviceNames: () => Promise<ReadonlyMap<number, string>>,
  ): Promise<{ entries: () => LogEntry[]; firstId: number; lastId: number }> {
    if (lines.length === 0) return { entries: () => [], firstId: 0, lastId: 0 };
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
    const { firstId, lastId } = await this.store(deviceId, rows.slice(-this.retention));
    // Pruning costs a walk of `retention` index entries, so it comes once a tenth of the retention has come in (per
    // node), and in the background: a post is answered once its lines are committed, not after a prune too.
    const since = (this.sincePrune.get(deviceId) ?? 0) + Math.min(rows.length, this.retention);
    if (since >= Math.ceil(this.retention / 10)) {
      this.sincePrune.delete(deviceId);
      this.schedulePrune(deviceId);
    } else this.sincePrune.set(deviceId, since);
    return { entries: () => rows.map((r) => toLogEntry({ ...r, id: 0 })), firstId, lastId };
  }

  /** Stops the background pruner and waits for the prune under way, if any (the server closing). */
  async close(): Promise<void> {
    this.closed = true;
    await this.pruning;
  }

  /** Resolves once no device is waiting to be pruned (tests). */
  async pruned(): Promise<void> {
    while (this.pruning) await this.pruning;
  }

  /**
   * Queues rows for a group commit and resolves, once they are committed, with the first and last id they got. The
   * batches of every post that arrives while a commit runs (or in the same turn of the event loop) go in the next
   * one, instead of a statement and a commit per post: at 2,000 devices posting every second, the per-statement cost
   * (building, preparing, committing) was most of the server's time.
   */
  private store(deviceId: number, rows: readonly LogInsert[]): Promise<{ firstId: number; lastId: number }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ deviceId, rows, resolve, reject });
      this.scheduleCommit();
    });
  }

  /**
   * The next commit runs in the event loop's check phase, after the poll phase has read what arrived: each commit
   * takes what came in since the last, and requests are read and answered between two commits.
   */
  private scheduleCommit(): void {
    if (this.scheduled || this.pending.length === 0 || this.inFlight >= this.maxInFlight) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.commit();
    });
  }

  private async commit(): Promise<void> {
    // Up to MAX_COMMIT_ROWS rows, in arrival order, skipping devices with a batch in a commit on its way; once a
    // device's batch is left for later, so are its later ones (a device's lines are stored in the order they came).
    const batches: PendingBatch[] = [];
    const later: PendingBatch[] = [];
    const held = new Set(this.committing);
    let rows = 0;
    for (const batch of this.pending) {
      if (held.has(batch.deviceId) || (rows > 0 && rows + batch.rows.length > MAX_COMMIT_ROWS)) {
        held.add(batch.deviceId);
        later.push(batch);
      } else {
        batches.push(batch);
        rows += batch.rows.length;
      }
    }
    if (batches.length === 0) return;
    this.pending = later;
    const devices = new Set(batches.map((b) => b.deviceId));
    for (const id of devices) this.committing.add(id);
    this.inFlight += 1;
    this.scheduleCommit();
    try {
      const ids = await this.insert(batches.flatMap((b) => b.rows));
      let at = 0;
      for (const batch of batches) {
        batch.resolve(idRange(ids.slice(at, at + batch.rows.length)));
        at += batch.rows.length;
      }
    } catch (error) {
      // One batch can fail them all (its device deleted meanwhile: a foreign key): each is tried alone, so only its
      // own post fails, as without the group commit.
      if (batches.length === 1) batches[0]!.reject(error);
      else
        for (const batch of batches)
          await this.insert(batch.rows).then((ids) => batch.resolve(idRange(ids)), batch.reject);
    } finally {
      for (const id of devices) this.committing.delete(id);
      this.inFlight -= 1;
      this.scheduleCommit();
    }
  }

  private schedulePrune(deviceId: number): void {
    this.duePrunes.add(deviceId);
    if (this.pruning || this.closed) return;
    this.pruning = this.pruneDue().finally(() => {
      this.pruning = undefined;
    });
  }

  /** The background pruner: due devices one by one, a few a turn of the event loop, until none is left. */
  private async pruneDue(): Promise<void> {
    while (this.duePrunes.size > 0 && !this.closed) {
      await new Promise((resolve) => setImmediate(resolve));
      for (const deviceId of [...this.duePrunes].slice(0, PRUNES_A_TURN)) {
        if (this.closed) return;
        this.duePrunes.delete(deviceId);
        await this.prune(deviceId).catch(this.onPruneError);
      }
    }
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

  /** Deletes the device's lines older than its newest `retention`, in one statement. */
  async prune(deviceId: number): Promise<void> {
    await this.db
      .deleteFrom('device_logs')
      .where('device_id', '=', deviceId)
      .where('id', '<=', (eb) =>
        eb
          .selectFrom('device_logs')
          .select('id')
          .where('device_id', '=', deviceId)
          .orderBy('id', 'desc')
          .offset(this.retention)
          .limit(1),
      )
      .execute();
  }
}
