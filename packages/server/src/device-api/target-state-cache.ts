import type { RolloutOverlay } from '../rollouts/rollout-overlay.js';
import type { TargetStateInput } from './build-target-state.js';

export type ReleasePart = NonNullable<TargetStateInput['release']>;

/** The parts of target state shared by every device of a fleet; valid while the fleet's revision is unchanged. */
export interface FleetPart {
  fleet: { id: number; uuid: string; name: string };
  release: ReleasePart | null;
  env: TargetStateInput['fleetEnv'];
  config: TargetStateInput['fleetConfig'];
  /** The fleet's maintenance window as stored (JSON); null: none. */
  updateWindowJson: string | null;
  /** A rollout that decides which unpinned devices get `release` and which `previous` (rollouts/rollout-overlay.ts). */
  rollout?: { overlay: RolloutOverlay; previous: ReleasePart | null } | undefined;
}

/**
 * Computed target states keyed by device UUID. An entry is valid while the device's and its fleet's revision
 * counters (read from the database on every poll) still match, so several server processes over one database
 * never serve a stale state: the database, not this cache, is the source of truth.
 */
export interface CachedState {
  fleetId: number;
  fleetRevision: number;
  deviceRevision: number;
  etag: string;
  body: string;
}

export class TargetStateCache {
  private readonly entries = new Map<string, CachedState>();

  constructor(private readonly maxEntries = 250_000) {}

  get(uuid: string, fleetId: number, fleetRevision: number, deviceRevision: number): CachedState | undefined {
    const entry = this.entries.get(uuid);
    if (!entry) return undefined;
    if (entry.fleetId !== fleetId || entry.fleetRevision !== fleetRevision || entry.deviceRevision !== deviceRevision) {
      this.entries.delete(uuid);
      return undefined;
    }
    return entry;
  }

  /** Whether a state is kept for the device, valid or not. */
  has(uuid: string): boolean {
    return this.entries.has(uuid);
  }

  set(uuid: string, entry: CachedState): void {
    if (this.entries.size >= this.maxEntries) {
      // Maps iterate in insertion order: dropping the first key evicts the oldest entry.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(uuid, entry);
  }

  private readonly fleets = new Map<number, { revision: number; part: FleetPart }>();

  fleetPart(fleetId: number, revision: number): FleetPart | undefined {
    const entry = this.fleets.get(fleetId);
    return entry && entry.revision === revision ? entry.part : undefined;
  }

  setFleetPart(fleetId: number, revision: number, part: FleetPart): void {
    this.fleets.set(fleetId, { revision, part });
  }

  get size(): number {
    return this.entries.size;
  }
}
