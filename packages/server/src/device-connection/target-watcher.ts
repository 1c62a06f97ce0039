import type { WebSocket } from 'ws';
import type { BusEvent, EventBus } from '../bus/event-bus.js';
import type { Db } from '../db/database.js';
import type { PollLookup, PollRow } from '../device-api/poll-lookup.js';
import type { TargetStates } from '../device-api/target-state.js';
import type { ConnectionHub } from './connection-hub.js';

const CHUNK = 1_000;
const TARGET_CHANGED = JSON.stringify({ type: 'target-changed' });

/** The revision counters a connection's device was last seen at (its target is computed from them). */
interface Seen {
  socket: WebSocket;
  fleetId: number;
  fleetRevision: number;
  deviceRevision: number;
}

interface RevisionRow {
  id: number;
  fleetId: number;
  fleetRevision: number;
  deviceRevision: number;
}

export interface TargetWatcherOptions {
  /** The level-based safety net: every connection compared again this often (a lost notice is caught then). */
  sweepMs?: number;
}

/**
 * Instant update trigger: tells each device connected to this node that its target state changed, so it fetches
 * now instead of at its next poll (15 min by default).
 *
 * Driven by the writes: every revision bump (db/revisions.ts) is announced by the database itself once committed
 * (migration 0014: a trigger; `targets-changed` on the bus, heard by every node), ids only. For a device, its
 * revisions are read again; for a fleet, its one counter, and every device of it connected here seen at an older
 * one is told. A sweep every `sweepMs` compares every connection the same way, batched: the safety net
 * for a notice lost (the bus connection dropped: `resync` sweeps at once).
 *
 * INVARIANT (no window for a lost change): for each connection, `seen` holds revisions R only once the device on
 * that connection holds a target computed after R was read, or has been sent `target-changed` after R was read (it
 * then fetches, after that). It rests on two orders: every write changes the data before it bumps a revision
 * (db/revisions.ts), and a target is computed only after its revisions were read; so a target computed after
 * reading R includes every write R counts, and a write it misses moves the revisions off R, and its notice comes
 * after its commit. `greet` establishes the invariant for a new connection; the checks keep it. The greeting is
 * registered (subscribed) BEFORE it reads the revisions, so a notice that comes while it runs is not lost:
 * - a write committed before the greeting reads R: R counts it, the device's ETag differs, announced at once;
 * - a write committed after that read, noticed while the greeting runs: the greeting is marked, and checks its
 *   connection again once seeded; noticed after the seeding: the connection is in `seen`, checked then;
 * - a check reading older revisions than the ones seen (they only grow): ignored; a newer one announces;
 * - a reconnect (here or to another node): the new connection is greeted afresh; entries of a replaced socket
 *   are ignored and dropped, and only the current socket of a device is ever seeded;
 * - several nodes: each hears every notice and checks the connections it holds, in the one database.
 */
export class TargetWatcher {
  private readonly seen = new Map<number, Seen>();
  /** Greetings under way, and whether a notice came meanwhile. */
  private readonly greeting = new Map<WebSocket, { noticed: boolean }>();
  private pendingFleets = new Set<number>();
  private pendingDevices = new Set<number>();
  private flushing: Promise<void> | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private unsubscribe: (() => void) | undefined;
  private readonly sweepMs: number;
  notified = 0;

  constructor(
    private readonly db: Db,
    private readonly hub: ConnectionHub,
    private readonly targetStates: TargetStates,
    /** The app's poll lookup (`ctx.deviceLookup`): what a greeting reads. */
    private readonly lookup: PollLookup,
    private readonly bus: EventBus,
    options: TargetWatcherOptions = {},
  ) {
    this.sweepMs = options.sweepMs ?? 60_000;
  }

  start(): void {
    this.unsubscribe = this.bus.subscribe((event) => this.hear(event));
    this.sweepTimer = setInterval(() => void this.sweep().catch(() => undefined), this.sweepMs);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    clearInterval(this.sweepTimer);
    await Promise.all([this.flushing, this.sweeping]);
  }

  /** Compares every connection now (a notice may have been lost); one sweep at a time. */
  sweep(): Promise<void> {
    this.sweeping ??= this.check(this.hub.connectedDeviceIds(), true).finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  /** Resolves once every notice heard so far has been checked (for tests and the bench). */
  async settled(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private hear(event: BusEvent): void {
    if (event.type === 'resync') void this.sweep().catch(() => undefined);
    if (event.type !== 'targets-changed') return;
    (event.kind === 'fleet' ? this.pendingFleets : this.pendingDevices).add(event.id);
    // INVARIANT: marked synchronously, before any greeting can seed its connection (see the class comment).
    for (const mark of this.greeting.values()) mark.noticed = true;
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /** Checks the connections the pending notices concern, until none is left; notices that come meanwhile join. */
  private async flush(): Promise<void> {
    // Let a burst of notices (one transaction bumping several revisions) gather into one pass.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pendingFleets.size > 0 || this.pendingDevices.size > 0) {
      const fleets = [...this.pendingFleets];
      const ids = [...this.pendingDevices];
      this.pendingFleets = new Set();
      this.pendingDevices = new Set();
      // A failed read is left to the sweep, which compares everything again.
      await this.checkFleets(fleets).catch(() => undefined);
      await this.check(ids, false).catch(() => undefined);
    }
  }

  /**
   * A device has just attached `socket`, saying it holds the target with ETag `heldEtag` (undefined: it did not
   * say). Announces at once when the device's current target differs, then watches the connection. `keyCheck`: the
   * row its key was checked with (with its part, if read), a moment before.
   * False when the device is gone; throws when the database cannot answer (the caller closes the connection, so
   * the device comes back and is greeted again: an ungreeted connection would never be told of a change).
   */
  async greet(keyCheck: PollRow & { uuid: string }, socket: WebSocket, heldEtag: string | undefined): Promise<boolean> {
    const deviceId = keyCheck.id;
    const mark = { noticed: false };
    this.greeting.set(socket, mark);
    try {
      // Read after the greeting is registered (the INVARIANT). Through the poll cache, which is never more stale
      // than the notices heard (poll-cache.ts) and holds the device since its key check: a node taking over
      // thousands of connections at once (another node died) reads no database here.
      const row = await this.lookup(keyCheck.uuid);
      if (!row || row.id !== deviceId) return false;
      // The part read with the key check holds for the same revisions: no notice came in between.
      const part =
        keyCheck.part &&
        keyCheck.revision === row.revision &&
        keyCheck.fleet_id === row.fleet_id &&
        keyCheck.fleet_revision === row.fleet_revision
          ? keyCheck.part
          : undefined;
      // Computed (or taken from the cache, valid for exactly these revisions) after the revisions were read.
      const { entry } = await this.targetStates.for(keyCheck.uuid, { ...row, part });
      if (this.hub.socketOf(deviceId) !== socket) return true; // replaced meanwhile: that connection is greeted itself
      const held = heldEtag?.replace(/^W\//, '');
      if (held !== entry.etag) this.tell(socket);
      this.seen.set(deviceId, {
        socket,
        fleetId: row.fleet_id,
        fleetRevision: row.fleet_revision,
        deviceRevision: row.revision,
      });
    } finally {
      this.greeting.delete(socket);
    }
    if (mark.noticed) await this.check([deviceId], false);
    return true;
  }

  /** Forgets a connection that closed. */
  forget(deviceId: number, socket: WebSocket): void {
    if (this.seen.get(deviceId)?.socket === socket) this.seen.delete(deviceId);
    this.greeting.delete(socket);
  }

  /**
   * A fleet's bump moves only its own counter: one read of it, then each connection seen in that fleet at an older
   * revision is told. A device that left the fleet meanwhile had its own revision bumped, so its own notice covers
   * it; a device seen at a newer revision was told already.
   */
  private async checkFleets(fleetIds: number[]): Promise<void> {
    if (fleetIds.length === 0) return;
    const rows = await this.db.selectFrom('fleets').select(['id', 'revision']).where('id', 'in', fleetIds).execute();
    const revisions = new Map(rows.map((row) => [row.id, row.revision]));
    for (const [id, seen] of this.seen) {
      const revision = revisions.get(seen.fleetId);
      if (revision === undefined || revision <= seen.fleetRevision) continue;
      if (this.hub.socketOf(id) !== seen.socket) {
        this.seen.delete(id);
        continue;
      }
      seen.fleetRevision = revision;
      this.tell(seen.socket);
    }
  }

  /** Reads the revisions of these connected devices and tells those whose revisions moved on. */
  private async check(ids: number[], paced: boolean): Promise<void> {
    for (let i = 0; i < ids.length; i += CHUNK) {
      const rows: RevisionRow[] = await this.db
        .selectFrom('devices')
        .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
        .select([
          'devices.id as id',
          'devices.revision as deviceRevision',
          'devices.fleet_id as fleetId',
          'fleets.revision as fleetRevision',
        ])
        .where('devices.id', 'in', ids.slice(i, i + CHUNK))
        .execute();
      for (const row of rows) this.compare(row);
      // The sweep yields between batches, so it never holds the event loop (or SQLite's connection) for long.
      if (paced) await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  private compare(row: RevisionRow): void {
    const seen = this.seen.get(row.id);
    // Not greeted yet, or replaced since: the greeting of the current connection covers it.
    if (!seen || this.hub.socketOf(row.id) !== seen.socket) {
      if (seen) this.seen.delete(row.id);
      return;
    }
    // Revisions only grow (a move to another fleet bumps the device's): a read older than the one seen says nothing.
    if (row.deviceRevision < seen.deviceRevision) return;
    const sameFleet = row.fleetId === seen.fleetId;
    if (row.deviceRevision === seen.deviceRevision && sameFleet && row.fleetRevision <= seen.fleetRevision) return;
    seen.fleetId = row.fleetId;
    seen.fleetRevision = row.fleetRevision;
    seen.deviceRevision = row.deviceRevision;
    this.tell(seen.socket);
  }

  private tell(socket: WebSocket): void {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(TARGET_CHANGED);
    this.notified += 1;
  }
}
