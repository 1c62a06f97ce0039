import type { BusEvent, EventBus } from '../bus/event-bus.js';
import { hearLocalBumps } from '../db/revisions.js';
import type { PollLookup, PollRow, PollSource } from './poll-lookup.js';

/** The device's own part of a poll row; the fleet's revision is kept once per fleet. */
interface DeviceEntry {
  id: number;
  key_hash: string | null;
  revision: number;
  fleet_id: number;
  /** When it was read (ms, monotonic): entries older than `maxAgeMs` are read again. */
  at: number;
}

export interface PollCacheOptions {
  /** Devices kept (default 250,000, like the target-state cache); the oldest read goes first. */
  maxEntries?: number;
  /**
   * How long an entry is trusted without being read again. The bound on a notice lost without the bus knowing (a
   * half-open connection to PostgreSQL), as the target watcher's sweep is for connections. Default: none on a
   * single node (its notices are calls on its own connection), 60 s when nodes share the database.
   */
  maxAgeMs?: number;
  /** Told each lookup's result (metrics). */
  count?: (result: 'hit' | 'miss' | 'bypass') => void;
}

/**
 * What every target-state poll checks (the device's key, fleet and revisions), kept in memory so a steady poll
 * reads no database: at 100,000 devices the lookup was the poll's largest cost after the socket write, and on
 * PostgreSQL a round trip for every poll.
 *
 * INVARIANT (never more stale than the notices): everything the row holds changes only through writes the database
 * announces once committed, as `targets-changed` on the bus, to every node (db/migrations.ts 0014: revision bumps;
 * 0018: a device's key, fleet, or deletion). A notice drops what it concerns, so a revoked key or a deleted device
 * fails its next poll on every node as soon as the node hears of it; a revision bump made by this node drops its
 * entry as it is written (db/revisions.ts `hearLocalBumps`), so a poll after a write that returned sees it. The cache is trusted only while the bus
 * listens and after it was connected: a notice lost while the bus was down is covered by `resync`, which empties
 * it, and a read that a notice overtook (PostgreSQL's lookup is asynchronous) is answered but not kept.
 */
export class PollCache {
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly uuids = new Map<number, string>();
  private readonly fleetRevisions = new Map<number, number>();
  /** Counts notices heard; a read that saw it move while it ran is not kept. */
  private epoch = 0;
  private bus: EventBus | undefined;
  private readonly maxEntries: number;
  private maxAgeMs: number | undefined;

  constructor(
    private readonly source: PollSource,
    private readonly options: PollCacheOptions = {},
  ) {
    this.maxEntries = options.maxEntries ?? 250_000;
  }

  /** Starts trusting the cache, kept current by the bus's notices. Returns the unsubscribe function. */
  connect(bus: EventBus): () => void {
    this.maxAgeMs = this.options.maxAgeMs ?? (bus.shared ? 60_000 : undefined);
    const unsubscribe = bus.subscribe((event) => this.hear(event));
    // This node's own writes drop at once what they change, before the database's notice comes back.
    const unhearLocal = hearLocalBumps((bump) => this.hear({ type: 'targets-changed', ...bump }));
    this.bus = bus;
    return () => {
      unsubscribe();
      unhearLocal();
      this.bus = undefined;
      this.clear();
    };
  }

  /** The poll row of `uuid`, from memory when trusted, else from the database. */
  get: PollLookup = (uuid, withPart) => {
    if (!this.bus?.listening) {
      this.options.count?.('bypass');
      return this.source.lookup(uuid, withPart);
    }
    const entry = this.devices.get(uuid);
    if (entry) {
      const fleetRevision = this.fleetRevisions.get(entry.fleet_id);
      if (
        fleetRevision !== undefined &&
        (this.maxAgeMs === undefined || performance.now() - entry.at < this.maxAgeMs)
      ) {
        this.options.count?.('hit');
        return {
          id: entry.id,
          key_hash: entry.key_hash,
          revision: entry.revision,
          fleet_id: entry.fleet_id,
          fleet_revision: fleetRevision,
        };
      }
    }
    this.options.count?.('miss');
    const epoch = this.epoch;
    const at = performance.now();
    const row = this.source.lookup(uuid, withPart);
    if (row instanceof Promise) return row.then((read) => this.keep(uuid, read, epoch, at));
    // Synchronous (SQLite): read on the one connection, perhaps inside a write's open transaction.
    return this.source.committed() ? this.keep(uuid, row, epoch, at) : row;
  };

  get size(): number {
    return this.devices.size;
  }

  private keep(uuid: string, row: PollRow | undefined, epoch: number, at: number): PollRow | undefined {
    // Unknown devices are not kept: a UUID registered a moment later must be found.
    if (!row || epoch !== this.epoch || !this.bus?.listening) return row;
    this.drop(uuid);
    if (this.devices.size >= this.maxEntries) {
      // Maps iterate in insertion order: the first key is the oldest read.
      const oldest = this.devices.keys().next();
      if (!oldest.done) this.drop(oldest.value);
    }
    this.devices.set(uuid, {
      id: row.id,
      key_hash: row.key_hash,
      revision: row.revision,
      fleet_id: row.fleet_id,
      at,
    });
    this.uuids.set(row.id, uuid);
    this.fleetRevisions.set(row.fleet_id, row.fleet_revision);
    return row;
  }

  private drop(uuid: string): void {
    const entry = this.devices.get(uuid);
    if (!entry) return;
    this.devices.delete(uuid);
    if (this.uuids.get(entry.id) === uuid) this.uuids.delete(entry.id);
  }

  private clear(): void {
    this.epoch += 1;
    this.devices.clear();
    this.uuids.clear();
    this.fleetRevisions.clear();
  }

  private hear(event: BusEvent): void {
    if (event.type === 'resync') this.clear();
    if (event.type !== 'targets-changed') return;
    this.epoch += 1;
    if (event.kind === 'fleet') this.fleetRevisions.delete(event.id);
    else {
      const uuid = this.uuids.get(event.id);
      if (uuid !== undefined) this.drop(uuid);
    }
  }
}
