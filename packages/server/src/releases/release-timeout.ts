import type { FastifyBaseLogger } from 'fastify';
import type { Db } from '../db/database.js';
import { bumpFleet } from '../db/revisions.js';

export const DEFAULT_RELEASE_TIMEOUT_MS = 60 * 60 * 1000;

/**
 * Marks failed every release still `running` that was created more than `timeoutMs` ago: its push failed or the
 * CLI died, and nothing else would ever finish it. Returns the ids this call failed.
 *
 * INVARIANT: one conditional UPDATE (`where status = 'running'`), so server nodes sweeping the same PostgreSQL
 * database at once fail each release once, and a release the CLI finished meanwhile is left alone.
 */
export async function failStaleReleases(db: Db, timeoutMs: number, now = Date.now()): Promise<number[]> {
  const cutoff = new Date(now - timeoutMs).toISOString();
  const failed = await db
    .updateTable('releases')
    .set({ status: 'failed' })
    .where('status', '=', 'running')
    .where('created_at', '<', cutoff)
    .returning(['id', 'fleet_id'])
    .execute();
  for (const fleetId of new Set(failed.map((r) => r.fleet_id))) await bumpFleet(db, fleetId);
  return failed.map((r) => r.id);
}

/** Sweeps every quarter of the timeout (at most each minute), one sweep at a time; returns a stop function. */
export function scheduleReleaseTimeout(db: Db, timeoutMs: number, log: FastifyBaseLogger): () => Promise<void> {
  if (timeoutMs <= 0) return async () => undefined;
  let sweeping: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      sweeping ??= failStaleReleases(db, timeoutMs)
        .then((ids) => {
          if (ids.length > 0) log.warn({ releases: ids }, 'releases still running after the timeout marked failed');
        })
        .catch((error: unknown) => log.error({ err: error }, 'failing timed-out releases failed'))
        .finally(() => {
          sweeping = undefined;
        });
    },
    Math.min(Math.max(Math.floor(timeoutMs / 4), 100), 60_000),
  );
  timer.unref();
  return async () => {
    clearInterval(timer);
    await sweeping;
  };
}
