import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, SqliteDriver } from 'kysely';
import type { DatabaseConnection, Driver } from 'kysely';
import pg from 'pg';
import { startCheckpointer } from './checkpointer.js';
import { makePrivateDir, touchPrivateFile } from '../disk/private-files.js';
import { migrations } from './migrations.js';
import type { Dialect } from './dialect.js';
import type { Database } from './schema.js';

export type { Dialect } from './dialect.js';
export type Db = Kysely<Database>;

export interface OpenedDatabase {
  db: Db;
  dialect: Dialect;
  close: () => Promise<void>;
  /**
   * SQLite only: the raw handle, for the one hot path (the target-state poll lookup, device-api/poll-lookup.ts)
   * where building and preparing a statement per request would cost more than running it. Everything else goes
   * through Kysely. WARNING: not for routes: the app hands them the lookup, never this handle.
   */
  sqlite?: SqliteDatabase.Database;
  /** PostgreSQL only: where it is, for connections of their own (the server bus listens on one). */
  postgresUrl?: string;
  /**
   * PostgreSQL only: the pool Kysely runs on, for the same hot path as `sqlite` (a named statement, prepared once
   * per connection). WARNING: not for routes, as for `sqlite`.
   */
  postgresPool?: pg.Pool;
  /**
   * SQLite only: the revision bumps (migration 0013's triggers), as they happen. WARNING: a listener hears them
   * while the writing statement runs, maybe inside a transaction that is not committed yet: it must not touch the
   * handle at once; a read through Kysely waits for the connection, so it runs after the commit.
   */
  targetChanges?: TargetChangeFeed;
}

export type TargetChange = { kind: 'fleet' | 'device'; id: number };

/** Listeners of revision bumps on a SQLite connection (one node: nobody else needs to hear them). */
export class TargetChangeFeed {
  private readonly listeners = new Set<(change: TargetChange) => void>();
  subscribe(listener: (change: TargetChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(change: TargetChange): void {
    // After the statement returns: a listener may read (through Kysely, which queues behind the writer).
    queueMicrotask(() => {
      for (const listener of this.listeners) listener(change);
    });
  }
}

export interface DatabaseOptions {
  /** `postgres://…` selects PostgreSQL; otherwise SQLite. */
  databaseUrl?: string | undefined;
  /** Folder for `flotilla.db` when SQLite is used. */
  dataDir?: string | undefined;
  /** SQLite only: `:memory:` for throwaway databases. */
  sqliteFile?: string | undefined;
}

// PostgreSQL returns int8 (COUNT, BIGINT) as strings by default; our values fit in a double.
pg.types.setTypeParser(20, (value: string) => Number(value));

/** Opens the database named by the options and brings its schema up to date. */
export async function openDatabase(options: DatabaseOptions): Promise<OpenedDatabase> {
  const url = options.databaseUrl;
  let opened: OpenedDatabase;
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // WARNING: an idle connection the database ends (restart, failover, an administrator, a database dropped
    // while the pool closes) is reported here; without a listener that event would crash the whole process. The
    // pool has already dropped that connection and opens a new one on the next query.
    pool.on('error', () => undefined);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    opened = { db, dialect: 'postgres', close: () => db.destroy(), postgresUrl: url, postgresPool: pool };
  } else {
    let file = options.sqliteFile ?? ':memory:';
    if (!options.sqliteFile && options.dataDir) {
      makePrivateDir(options.dataDir);
      file = join(options.dataDir, 'flotilla.db');
      // SQLite gives its -wal and -shm files the database file's mode, so creating it 0600 covers all three.
      touchPrivateFile(file);
    }
    const sqlite = new SqliteDatabase(file);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = NORMAL');
    sqlite.pragma('foreign_keys = ON');
    sqlite.pragma('busy_timeout = 5000');
    const targetChanges = new TargetChangeFeed();
    sqlite.function('flotilla_targets_changed', { deterministic: false }, (kind: unknown, id: unknown) => {
      if ((kind === 'fleet' || kind === 'device') && typeof id === 'number') targetChanges.emit({ kind, id });
      else if ((kind === 'fleet' || kind === 'device') && typeof id === 'bigint')
        targetChanges.emit({ kind, id: Number(id) });
      return null;
    });
    const db = new Kysely<Database>({ dialect: new KeepingErrorsSqliteDialect(sqlite) });
    opened = { db, dialect: 'sqlite', close: () => db.destroy(), sqlite, targetChanges };
  }
  const migrator = new Migrator({ db: opened.db, provider: migrations(opened.dialect) });
  const { error } = await migrator.migrateToLatest();
  if (error) {
    await opened.close();
    throw error;
  }
  const { sqlite } = opened;
  if (sqlite && sqlite.name !== ':memory:') {
    const checkpointer = await startCheckpointer(sqlite, sqlite.name, (failure) =>
      process.emitWarning(`the SQLite checkpoint thread failed: ${failure.message}`),
    );
    const closeDb = opened.close;
    opened.close = async () => {
      await checkpointer.stop();
      await closeDb();
    };
  }
  return opened;
}

export function now(): string {
  return new Date().toISOString();
}

/**
 * SQLite rolls a transaction back by itself on some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM …). Kysely then
 * sends its own ROLLBACK, which fails with "no transaction is active" and replaces the error that matters: a full
 * disk would answer 500 instead of 507 STORAGE_FULL. INVARIANT: the error a transaction failed with is the one seen.
 */
class KeepingErrorsSqliteDialect extends SqliteDialect {
  constructor(private readonly sqlite: SqliteDatabase.Database) {
    super({ database: cachingStatements(sqlite) });
  }

  override createDriver(): Driver {
    const { sqlite } = this;
    return new (class extends SqliteDriver {
      override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
        if (sqlite.inTransaction) await super.rollbackTransaction(connection);
      }
    })({ database: cachingStatements(sqlite) });
  }
}

/** Distinct statements kept prepared; queries with long `IN (?, ?, …)` lists make new texts, so it is bounded. */
const PREPARED_STATEMENTS = 500;

/**
 * Kysely's SQLite driver prepares every query it runs; preparing costs more than running the small queries of the
 * poll path (a first poll makes five), so statements are kept by their SQL text. Safe because the driver runs one
 * query at a time on the one connection (a stream holds it until done), sets no per-statement mode (raw, pluck),
 * and SQLite re-prepares a kept statement by itself after a schema change.
 */
function cachingStatements(sqlite: SqliteDatabase.Database): SqliteDatabase.Database {
  const prepared = new Map<string, SqliteDatabase.Statement>();
  return new Proxy(sqlite, {
    get(target, property) {
      if (property !== 'prepare') {
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      }
      return (sql: string) => {
        let statement = prepared.get(sql);
        if (!statement) {
          statement = target.prepare(sql);
          if (prepared.size >= PREPARED_STATEMENTS) prepared.delete(prepared.keys().next().value as string);
          prepared.set(sql, statement);
        }
        return statement;
      };
    },
  });
}
