import type { Device } from '@flotilla/protocol';
import type { EventBus } from '../bus/event-bus.js';
import type { Db } from '../db/database.js';
import { onlineSince } from '../devices/device-status.js';
import { toDevices, type DeviceRow } from '../devices/device-view.js';
import { ONLINE_WINDOW_MS, fleetTargetRelease } from '../fleets/fleets.js';

/** What a follower of a fleet hears; `lost` means news may have been missed: the follower must start over. */
export type DeviceEvent =
  | { type: 'device'; device: Device }
  | { type: 'device-removed'; uuid: string }
  /** The fleet's release changed: each unpinned device has a new target (the follower refetches what it shows). */
  | { type: 'fleet-changed'; targetRelease: string | null }
  | { type: 'lost' };
export type DeviceListener = (event: DeviceEvent) => void;
/**
 * What a follower of a fleet's figures hears (the fleets page's live counts): `touched` once per round in which a
 * device of the fleet changed, joined, left or went offline; `lost` as above.
 */
export type TouchListener = (event: 'touched' | 'lost') => void;

export interface DeviceChangesOptions {
  /** Least time between two rounds of news, so one device makes at most one event per round (default 250 ms). */
  coalesceMs?: number;
  /** How often devices crossing the online window are looked for (default 1 s). */
  offlineCheckMs?: number;
  onError: (error: unknown, what: string) => void;
}

interface Removal {
  fleetId: number;
  uuid: string;
}

/** Ids per bus message: a notification carries at most 8,000 bytes. */
const BUS_CHUNK = 500;
/** Rows read per query while a round turns ids into Devices. */
const READ_CHUNK = 500;

/**
 * The news of device changes for the followers of fleets on this node (the dashboard's live device table).
 *
 * Write sites call `changed`, `fleetChanged` (the fleet's target release moved: every unpinned device's
 * `targetRelease` changes), `removed` or `fleetRemoved` after their write committed; only ids are noted. A round
 * every `coalesceMs` at most reads the noted devices that belong to a followed fleet (nothing is read when no one
 * here follows), turns them into Devices in a few queries, and hands each follower of the device's fleet one event
 * per device, whatever the number of writes meanwhile. A fleet's release change is one `fleet-changed` event, not
 * one per device, however large the fleet. Level-based: the event carries the device as the database has it when
 * the round reads, so a burst ends on the last state. Followers of a fleet's figures (`followTouches`) hear only
 * that its devices changed, once per round.
 *
 * With several server nodes, the ids go out on the bus each round (batched) and other nodes note them in turn.
 * Going offline is not a write: a timer looks for devices of followed fleets whose `last_seen_at` crossed the
 * online window since its last look (an index range, devices/device-status.ts), on every node by itself.
 *
 * INVARIANT: a follower gets a device's `device-removed` after any `device` event of it read before the removal
 * was noted (removals go out last in their round); after `lost` (the bus reconnected, or the fleet is gone) the
 * follower starts over, since news said meanwhile was missed.
 */
export class DeviceChanges {
  private readonly followers = new Map<number, Set<DeviceListener>>();
  private readonly touchFollowers = new Map<number, Set<TouchListener>>();
  private dirty = new Set<number>();
  private dirtyFleets = new Set<number>();
  private removals: Removal[] = [];
  private outgoing = { ids: new Set<number>(), fleets: new Set<number>(), removals: [] as Removal[] };
  private bus: EventBus | undefined;
  private timer: NodeJS.Timeout | undefined;
  private rounds: Promise<void> = Promise.resolve();
  private offlineTimer: NodeJS.Timeout | undefined;
  private offlineFrom: string | undefined;
  private checkingOffline = false;
  private closed = false;
  private readonly coalesceMs: number;
  private readonly offlineCheckMs: number;

  constructor(
    private readonly db: Db,
    private readonly options: DeviceChangesOptions,
    private readonly windowMs = ONLINE_WINDOW_MS,
  ) {
    this.coalesceMs = options.coalesceMs ?? 250;
    this.offlineCheckMs = options.offlineCheckMs ?? 1_000;
  }

  /** The devices changed (a report, tags, a rename, a pin, a move into another fleet, a connection …). */
  changed(deviceIds: Iterable<number>): void {
    for (const id of deviceIds) {
      if (this.following()) this.dirty.add(id);
      if (this.bus?.shared) this.outgoing.ids.add(id);
    }
    this.schedule();
  }

  /** The fleet's target release changed: each of its devices that is not pinned changed. */
  fleetChanged(fleetId: number): void {
    if (this.followers.has(fleetId)) this.dirtyFleets.add(fleetId);
    if (this.bus?.shared) this.outgoing.fleets.add(fleetId);
    this.schedule();
  }

  /** The devices left their fleets (deleted, or moved to another fleet: note `changed` for that too). */
  removed(devices: Iterable<Removal>): void {
    for (const removal of devices) {
      if (this.follows(removal.fleetId)) this.removals.push(removal);
      if (this.bus?.shared) this.outgoing.removals.push(removal);
    }
    this.schedule();
  }

  /** The fleet was deleted: its followers are told to start over (and find it gone), on every node. */
  fleetRemoved(fleetId: number, fromBus = false): void {
    for (const listener of [...(this.followers.get(fleetId) ?? [])]) this.tell(listener, { type: 'lost' });
    for (const listener of [...(this.touchFollowers.get(fleetId) ?? [])]) this.touch(listener, 'lost');
    if (!fromBus) this.bus?.publish({ type: 'fleet-removed', fleetId });
  }

  /** Hears the fleet's news until the returned function is called. */
  follow(fleetId: number, listener: DeviceListener): () => void {
    return this.add(this.followers, fleetId, listener);
  }

  /**
   * Hears that the fleet's devices changed, without their rows, until the returned function is called: enough for
   * whoever recounts the fleet's figures (events/fleet-counts.ts). No Device is built for such a follower.
   */
  followTouches(fleetId: number, listener: TouchListener): () => void {
    return this.add(this.touchFollowers, fleetId, listener);
  }

  followerCount(): number {
    let n = 0;
    for (const set of [...this.followers.values(), ...this.touchFollowers.values()]) n += set.size;
    return n;
  }

  /** Tells the other nodes what changed here, and hears what changed there. Returns the unsubscribe function. */
  connect(bus: EventBus): () => void {
    this.bus = bus;
    return bus.subscribe((event) => {
      if (event.type === 'devices-changed') {
        if (!this.following()) return;
        for (const id of event.ids) this.dirty.add(id);
        this.schedule();
      } else if (event.type === 'fleet-devices-changed') {
        if (!this.followers.has(event.fleetId)) return;
        this.dirtyFleets.add(event.fleetId);
        this.schedule();
      } else if (event.type === 'device-removed') {
        if (!this.follows(event.fleetId)) return;
        this.removals.push({ fleetId: event.fleetId, uuid: event.uuid });
        this.schedule();
      } else if (event.type === 'fleet-removed') this.fleetRemoved(event.fleetId, true);
      else if (event.type === 'resync') {
        for (const set of [...this.followers.values()])
          for (const listener of [...set]) this.tell(listener, { type: 'lost' });
        for (const set of [...this.touchFollowers.values()])
          for (const listener of [...set]) this.touch(listener, 'lost');
      }
    });
  }

  /** Runs a round now (tests); rounds otherwise run on their own. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.rounds = this.rounds.then(() => this.round());
    await this.rounds;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.stopOfflineWatch();
    await this.rounds;
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    const { ids, fleets, removals } = this.outgoing;
    const noted = this.dirty.size + this.dirtyFleets.size + this.removals.length + ids.size + fleets.size;
    if (noted + removals.length === 0) return;
    // INVARIANT: the timer is cleared when it fires, so two rounds start at least coalesceMs apart.
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.rounds = this.rounds.then(() => this.round());
    }, this.coalesceMs);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    try {
      this.publishOutgoing();
      const ids = [...this.dirty];
      const fleets = [...this.dirtyFleets];
      const removals = this.removals;
      this.dirty = new Set();
      this.dirtyFleets = new Set();
      this.removals = [];
      const followed = this.followedFleets();
      if (followed.length === 0) return;
      const sent = new Set<number>();
      const touched = new Set<number>();
      for (let i = 0; i < ids.length; i += READ_CHUNK) {
        const rows = await this.db
          .selectFrom('devices')
          .selectAll()
          .where('id', 'in', ids.slice(i, i + READ_CHUNK))
          .where('fleet_id', 'in', followed)
          .execute();
        for (const row of rows) touched.add(row.fleet_id);
        await this.send(rows, sent);
      }
      for (const fleetId of fleets) {
        // One event for the fleet, never one per device: a deploy to 10,000 devices is one line on the stream.
        const fleet = await this.db
          .selectFrom('fleets')
          .select(['id', 'pinned_release_id'])
          .where('id', '=', fleetId)
          .executeTakeFirst();
        if (!fleet) continue;
        const targetRelease = (await fleetTargetRelease(this.db, fleet))?.commit ?? null;
        for (const listener of [...(this.followers.get(fleetId) ?? [])])
          this.tell(listener, { type: 'fleet-changed', targetRelease });
      }
      for (const removal of removals) {
        touched.add(removal.fleetId);
        for (const listener of [...(this.followers.get(removal.fleetId) ?? [])])
          this.tell(listener, { type: 'device-removed', uuid: removal.uuid });
      }
      for (const fleetId of touched)
        for (const listener of [...(this.touchFollowers.get(fleetId) ?? [])]) this.touch(listener, 'touched');
    } catch (error) {
      this.options.onError(error, 'sending device news to followers');
    }
  }

  private async send(rows: DeviceRow[], sent: Set<number>): Promise<void> {
    const fresh = rows.filter((r) => !sent.has(r.id) && this.followers.has(r.fleet_id));
    if (fresh.length === 0) return;
    const fleetOf = new Map(fresh.map((r) => [r.id, r.fleet_id]));
    for (const device of await toDevices(this.db, fresh)) {
      sent.add(device.id);
      const fleetId = fleetOf.get(device.id);
      for (const listener of [...(this.followers.get(fleetId ?? -1) ?? [])])
        this.tell(listener, { type: 'device', device });
    }
  }

  private touch(listener: TouchListener, event: 'touched' | 'lost'): void {
    try {
      listener(event);
    } catch (error) {
      this.options.onError(error, 'a fleet figures follower failed');
    }
  }

  private add<L>(map: Map<number, Set<L>>, fleetId: number, listener: L): () => void {
    let set = map.get(fleetId);
    if (!set) {
      set = new Set();
      map.set(fleetId, set);
    }
    set.add(listener);
    this.offlineFrom ??= onlineSince(Date.now(), this.windowMs);
    this.offlineTimer ??= setInterval(() => void this.checkOffline(), this.offlineCheckMs).unref();
    return () => {
      set.delete(listener);
      if (set.size === 0 && map.get(fleetId) === set) map.delete(fleetId);
      if (!this.following()) this.stopOfflineWatch();
    };
  }

  private following(): boolean {
    return this.followers.size > 0 || this.touchFollowers.size > 0;
  }

  private follows(fleetId: number): boolean {
    return this.followers.has(fleetId) || this.touchFollowers.has(fleetId);
  }

  /** Fleets someone here follows, for their devices or their figures. */
  private followedFleets(): number[] {
    return [...new Set([...this.followers.keys(), ...this.touchFollowers.keys()])];
  }

  private tell(listener: DeviceListener, event: DeviceEvent): void {
    try {
      listener(event);
    } catch (error) {
      this.options.onError(error, 'a device news follower failed');
    }
  }

  private publishOutgoing(): void {
    const bus = this.bus;
    const { ids, fleets, removals } = this.outgoing;
    this.outgoing = { ids: new Set(), fleets: new Set(), removals: [] };
    if (!bus?.shared) return;
    const all = [...ids];
    for (let i = 0; i < all.length; i += BUS_CHUNK)
      bus.publish({ type: 'devices-changed', ids: all.slice(i, i + BUS_CHUNK) });
    for (const fleetId of fleets) bus.publish({ type: 'fleet-devices-changed', fleetId });
    for (const removal of removals) bus.publish({ type: 'device-removed', ...removal });
  }

  /** Devices of followed fleets whose last sign of life left the online window since the last look. */
  private async checkOffline(): Promise<void> {
    if (this.checkingOffline || this.offlineFrom === undefined) return;
    const followed = this.followedFleets();
    if (followed.length === 0) return;
    this.checkingOffline = true;
    try {
      const from = this.offlineFrom;
      const to = onlineSince(Date.now(), this.windowMs);
      const rows = await this.db
        .selectFrom('devices')
        .select('id')
        .where('fleet_id', 'in', followed)
        .where('last_seen_at', '>', from)
        .where('last_seen_at', '<=', to)
        .execute();
      // Only after a successful read: a failed look is repeated over the same span.
      if (this.offlineFrom === from) this.offlineFrom = to;
      if (rows.length === 0) return;
      for (const row of rows) this.dirty.add(row.id);
      this.schedule();
    } catch (error) {
      this.options.onError(error, 'looking for devices gone offline');
    } finally {
      this.checkingOffline = false;
    }
  }

  private stopOfflineWatch(): void {
    clearInterval(this.offlineTimer);
    this.offlineTimer = undefined;
    this.offlineFrom = undefined;
  }
}
