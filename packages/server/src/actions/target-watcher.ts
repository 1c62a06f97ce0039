import type { Db } from '../db/database.js';
import type { ActionHub } from './action-hub.js';

const CHUNK = 500;

/**
 * Instant update trigger: tells each device connected to this node that its target state changed, so it fetches
 * now instead of at its next poll (15 min by default).
 *
 * Level-based on purpose: it compares the device's and its fleet's revision counters (bumped by every write that
 * can change a target) with the ones seen last time. Reading the database, not hooking the writes, means a change
 * made on another server node, or in a transaction that commits later, is noticed all the same.
 */
export class TargetWatcher {
  private readonly seen = new Map<number, string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  notified = 0;

  constructor(
    private readonly db: Db,
    private readonly hub: ActionHub,
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

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** One comparison round; exposed for tests. */
  async tick(): Promise<void> {
    const connected = this.hub.connectedDeviceIds();
    const live = new Set(connected);
    for (const id of this.seen.keys()) if (!live.has(id)) this.seen.delete(id);
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
        const key = `${row.fleetId}:${row.fleetRevision}:${row.deviceRevision}`;
        const previous = this.seen.get(row.id);
        this.seen.set(row.id, key);
        // First sight: the device fetches on connect by itself, so only later changes are announced.
        if (previous !== undefined && previous !== key && this.hub.send(row.id, { type: 'target-changed' }))
          this.notified += 1;
      }
    }
  }
}
