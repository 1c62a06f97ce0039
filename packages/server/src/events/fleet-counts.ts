import type { FleetCounts } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { type Counts, countDevicesByStatus } from '../devices/device-counts.js';
import type { DeviceChanges } from './device-changes.js';

/** Least time between two recounts for one stream: the figures move at most once a second, however busy the fleet. */
export const RECOUNT_MS = 1_000;

/**
 * The live figures of one stream (the fleets page): the given fleets' counts at once, then, whenever DeviceChanges
 * says a fleet's devices changed, a recount of the touched fleets in one grouped query: at once when the last one
 * is RECOUNT_MS old, else when it will be, so a burst costs one recount a second. Only the fleets whose figures
 * moved are sent. `lost` (news missed, a fleet deleted) ends the stream, and the client
 * starts over.
 *
 * INVARIANT: the cost follows what changed and the number of open streams, never the number of devices: no Device
 * is built and no device row leaves the database for this feed, only counts.
 */
export function followFleetCounts(
  db: Db,
  changes: DeviceChanges,
  fleets: readonly { id: number; slug: string }[],
  send: (counts: FleetCounts) => void,
  lost: () => void,
  onError: (error: unknown) => void,
): () => void {
  const slugs = new Map(fleets.map((f) => [f.id, f.slug]));
  const last = new Map<number, string>();
  const dirty = new Set<number>(slugs.keys());
  let timer: NodeJS.Timeout | undefined;
  let lastRun = Number.NEGATIVE_INFINITY;
  let running = false;
  let stopped = false;

  const recount = async () => {
    timer = undefined;
    if (stopped || running || dirty.size === 0) return;
    running = true;
    lastRun = performance.now();
    const ids = [...dirty];
    dirty.clear();
    try {
      const counts = await countDevicesByStatus(db, ids);
      for (const [id, figures] of counts) {
        const text = JSON.stringify(figures);
        if (stopped || last.get(id) === text) continue;
        last.set(id, text);
        send({ fleet: slugs.get(id) ?? '', ...(figures satisfies Counts) });
      }
    } catch (error) {
      // Counted again at the next change; the figures shown meanwhile are the last good ones.
      for (const id of ids) dirty.add(id);
      onError(error);
    } finally {
      running = false;
      schedule();
    }
  };
  const schedule = () => {
    if (stopped || timer || running || dirty.size === 0) return;
    timer = setTimeout(() => void recount(), Math.max(0, lastRun + RECOUNT_MS - performance.now()));
    timer.unref();
  };

  const unfollow = [...slugs.keys()].map((id) =>
    changes.followTouches(id, (event) => {
      if (event === 'lost') lost();
      else {
        dirty.add(id);
        schedule();
      }
    }),
  );
  void recount();
  return () => {
    stopped = true;
    clearTimeout(timer);
    for (const stop of unfollow) stop();
  };
}
