import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { DeviceReport, TargetDevice } from '@flotilla/protocol';
import { EMPTY_ROLLOUT, parseRollout, type Rollout } from '../rollback/rollout.js';
import { ensurePrivateFile, makePrivateDir } from './private-files.js';

/** Where the device is in its life; persisted so a restart resumes in the same phase. */
export type Phase = 'provision' | 'idle' | 'apply';

export interface TargetRecord {
  device: TargetDevice;
  etag: string | null;
  /** 'cloud' from the control plane, 'local' from a file or the programmatic API (unmanaged device). */
  source: 'cloud' | 'local';
}

/**
 * The agent's durable memory: target state, last ACKed report, known images, phase, services held stopped. SQLite
 * in WAL mode with synchronous=FULL, so a write that returned survives power loss; each setter is one statement
 * (atomic).
 */
export interface Store {
  getTarget(): TargetRecord | undefined;
  setTarget(record: TargetRecord): void;
  getLastReport(): DeviceReport | undefined;
  setLastReport(report: DeviceReport): void;
  knownImages(): string[];
  addKnownImage(ref: string): void;
  forgetImage(ref: string): void;
  getPhase(): Phase;
  setPhase(phase: Phase): void;
  /** Starts in a row that found the phase still 'apply' (see phases/phase-machine.ts); 0 once idle. */
  getInterruptedApplies(): number;
  setInterruptedApplies(count: number): void;
  getSecret(name: string, create: () => string): string;
  /** Services held stopped on request: `<appId>/<service>` → the target signature they were stopped under. */
  getStopHolds(): Record<string, string>;
  /** Replaces the whole hold map (one statement, so a crash leaves the old map or the new one). */
  setStopHolds(holds: Record<string, string>): void;
  /** Committed releases, the release under watch, refused releases (rollback/rollout.ts). */
  getRollout(): Rollout;
  /** Replaces the whole record in one statement: a crash leaves the old one or the new one, never a mix. */
  setRollout(rollout: Rollout): void;
  /** The target (window/update-gate.ts `targetDigest`) whose apply began inside its maintenance window; null: none. */
  getWindowApply(): string | null;
  setWindowApply(digest: string | null): void;
  /** The digest of the last preload manifest loaded (preload/preload.ts); null: none. */
  getPreloaded(): string | null;
  setPreloaded(digest: string): void;
  close(): void;
}

export function openStore(dataDir: string): Store {
  makePrivateDir(dataDir);
  const file = join(dataDir, 'agent.sqlite');
  ensurePrivateFile(file); // before SQLite makes it 0644; its -wal and -shm follow the file
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.exec(`
    CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS known_image (ref TEXT PRIMARY KEY, added_at INTEGER NOT NULL);
  `);
  const get = db.prepare<[string], { value: string }>('SELECT value FROM kv WHERE key = ?');
  const put = db.prepare<[string, string]>(
    'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
  );
  const insertIfAbsent = db.prepare<[string, string]>(
    'INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING',
  );
  const listImages = db.prepare<[], { ref: string }>('SELECT ref FROM known_image ORDER BY ref');
  const addImage = db.prepare<[string, number]>(
    'INSERT INTO known_image (ref, added_at) VALUES (?, ?) ON CONFLICT(ref) DO NOTHING',
  );
  const delImage = db.prepare<[string]>('DELETE FROM known_image WHERE ref = ?');
  let phase: Phase | undefined;
  let interruptedApplies: number | undefined;
  const json = <T>(key: string): T | undefined => {
    const row = get.get(key);
    return row ? (JSON.parse(row.value) as T) : undefined;
  };
  // A hand-edited or foreign value counts as 0 rather than failing the agent.
  const readCount = (key: string): number => {
    const stored = json<unknown>(key);
    return typeof stored === 'number' && Number.isInteger(stored) && stored >= 0 ? stored : 0;
  };
  return {
    getTarget: () => json<TargetRecord>('target'),
    setTarget: (record) => put.run('target', JSON.stringify(record)),
    getLastReport: () => json<DeviceReport>('lastReport'),
    setLastReport: (report) => put.run('lastReport', JSON.stringify(report)),
    knownImages: () => listImages.all().map((r) => r.ref),
    addKnownImage: (ref) => addImage.run(ref, Date.now()),
    forgetImage: (ref) => delImage.run(ref),
    getPhase: () => (phase ??= json<Phase>('phase') ?? 'provision'),
    setPhase: (next) => {
      // Cached: re-writing the same phase would cost an fsync for nothing.
      if (next === phase) return;
      put.run('phase', JSON.stringify(next));
      phase = next;
    },
    getInterruptedApplies: () => (interruptedApplies ??= readCount('interruptedApplies')),
    setInterruptedApplies: (count) => {
      // Cached like the phase: every start and idle transition asks for 0, which is almost always already stored.
      if (count === (interruptedApplies ??= readCount('interruptedApplies'))) return;
      put.run('interruptedApplies', JSON.stringify(count));
      interruptedApplies = count;
    },
    getSecret: (name, create) => {
      insertIfAbsent.run(`secret:${name}`, JSON.stringify(create()));
      return json<string>(`secret:${name}`) as string;
    },
    getStopHolds: () => {
      const stored = json<unknown>('stopHolds');
      if (stored === null || typeof stored !== 'object' || Array.isArray(stored)) return {};
      // A hand-edited or foreign value must not make the agent hold something it cannot match.
      return Object.fromEntries(Object.entries(stored).filter((e): e is [string, string] => typeof e[1] === 'string'));
    },
    setStopHolds: (holds) => put.run('stopHolds', JSON.stringify(holds)),
    // A hand-edited or foreign value must not stop the agent: what cannot be read counts as nothing committed.
    getRollout: () => parseRollout(json<unknown>('rollout')) ?? EMPTY_ROLLOUT,
    setRollout: (rollout) => put.run('rollout', JSON.stringify(rollout)),
    getWindowApply: () => {
      const stored = json<unknown>('windowApply');
      return typeof stored === 'string' ? stored : null;
    },
    setWindowApply: (digest) => put.run('windowApply', JSON.stringify(digest)),
    getPreloaded: () => {
      const stored = json<unknown>('preloaded');
      return typeof stored === 'string' ? stored : null;
    },
    setPreloaded: (digest) => put.run('preloaded', JSON.stringify(digest)),
    close: () => db.close(),
  };
}
