import type { WebSocket } from 'ws';
import type { Db } from '../db/database.js';
import type { TargetStateCache } from '../device-api/target-state-cache.js';
import { targetStateFor } from '../device-api/target-state.js';
import type { ConnectionHub } from './connection-hub.js';

const CHUNK = 500;

/** The revision counters a device's target is computed from; any write that can change the target changes it. */
const revisionKey = (row: { fleetId: number; fleetRevision: number; deviceRevision: number }): string =>
  `${row.fleetId}:${row.fleetRevision}:${row.deviceRevision}`;

/**
 * Instant update trigger: tells each device connected to this node that its target state changed, so it fetches
 * now instead of at its next poll (15 min by default).
 *
 * Level-based on purpose: it compares the device's and its fleet's revision counters (bumped by every write that
 * can change a target) with the ones seen last time. Reading the database, not hooking the writes, means a change
 * made on another server node, or in a transaction that commits later, is noticed all the same.
 *
 * INVARIANT (no window for a lost change): for each connection, `seen` holds a revision key K only once the device
 * on that connection holds a target computed after K was read, or has been sent `target-changed` after K was read
 * (it then fetches, after that). It rests on two orders: every write changes the data before it bumps a revision
 * (db/revisions.ts), and a target is computed only after its revisions were read; so a target computed after
 * reading K includes every write K counts, and a write it misses moves the key off K, which the next tick
 * announces. `greet` establishes the invariant for a new connection (comparing the ETag the device says it holds
 * with the target computed from K, and announcing when they differ); a tick keeps it (announcing whenever the key
 * moved). Until a connection is greeted the ticks leave it alone, and nothing is ever seeded from a tick's reads,
 * so the orderings hold however they interleave:
 * - a write committed before the greeting reads K: K counts it, the device's ETag differs, announced at once;
 * - a write after that read (or racing the attach, or committed late by a slow transaction): the key moves off
 *   K, announced by the first tick after the greeting;
 * - a tick whose read is older than the greeting's: its key differs from K, a redundant announcement, harmless;
 * - a reconnect (here or to another node): the new connection is greeted afresh; entries of a replaced socket
 *   are ignored and dropped, and only the current socket of a device is ever seeded;
 * - several nodes: each watches the connections it holds, all read the one database, so where a write was made
 *   does not matter.
 */
export class TargetWatcher {
  private readonly seen = new Map<number, { socket: WebSocket; key: string }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  notified = 0;

  constructor(
    private readonly db: Db,
    private readonly hub: ConnectionHub,
    private readonly cache: TargetStateCache,
    private readonly intervalMs = 1_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => {
        this.running = undefined;
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /**
   * Compares now instead of at the next tick (a rollout just opened a batch); a comparison under way is followed by
   * one more. A failed comparison is left to the next tick, which compares everything again.
   */
  nudge(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.tick()
      .catch(() => undefined)
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.nudge();
        }
      });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /**
   * A device has just attached `socket`, saying it holds the target with ETag `heldEtag` (undefined: it did not
   * say). Announces at once when the device's current target differs, then lets the ticks watch the connection.
   * False when the device is gone; throws when the database cannot answer (the caller closes the connection, so
   * the device comes back and is greeted again: an ungreeted connection would never be told of a change).
   */
  async greet(deviceId: number, socket: WebSocket, heldEtag: string | undefined): Promise<boolean> {
    const row = await this.db
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .select([
        'devices.uuid as uuid',
        'devices.revision as revision',
        'devices.fleet_id as fleet_id',
        'fleets.revision as fleet_revision',
      ])
      .where('devices.id', '=', deviceId)
      .executeTakeFirst();
    if (!row) return false;
    // Computed (or taken from the cache, valid for exactly these revisions) after the revisions were read.
    const { entry } = await targetStateFor(this.db, this.cache, row.uuid, { id: deviceId, ...row });
    if (this.hub.socketOf(deviceId) !== socket) return true; // replaced meanwhile: that connection is greeted itself
    const held = heldEtag?.replace(/^W\//, '');
    if (held !== entry.etag && socket.readyState === socket.OPEN) {
      socket.send(JSON.stringify({ type: 'target-changed' }));
      this.notified += 1;
    }
    this.seen.set(deviceId, {
      socket,
      key: revisionKey({ fleetId: row.fleet_id, fleetRevision: row.fleet_revision, deviceRevision: row.revision }),
    });
    return true;
  }

  /** One comparison round; exposed for tests. */
  async tick(): Promise<void> {
    const connected = this.hub.connectedDeviceIds();
    for (const [id, entry] of this.seen) if (this.hub.socketOf(id) !== entry.socket) this.seen.delete(id);
    for (let i = 0; i < connected.length; i += CHUNK) {
      const rows = await this.db
        .selectFrom('devices')
        .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
        .select([
          'devices.id as id',
          'devices.revision as deviceRevision',
          'devices.fleet_id as fleetId',
          'fleets.revision as fleetRevision',
        ])
        .where('devices.id', 'in', connected.slice(i, i + CHUNK))
        .execute();
      for (const row of rows) {
        const entry = this.seen.get(row.id);
        // Not greeted yet, or replaced since the read: the greeting of the current connection covers it.
        if (!entry || this.hub.socketOf(row.id) !== entry.socket) continue;
        const key = revisionKey(row);
        if (entry.key === key) continue;
        entry.key = key;
        if (this.hub.send(row.id, { type: 'target-changed' })) this.notified += 1;
      }
    }
  }
}
