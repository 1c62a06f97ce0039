/** A pass running longer than this is wedged (a pull of a large image on a slow link stays well below it). */
export const STUCK_PASS_MS = 30 * 60_000;
/** Grace beyond two poll intervals without any pass before the loop counts as wedged. */
const MISSING_PASS_GRACE_MS = 60_000;

export interface LoopTimes {
  now: number;
  /** Start of the pass in flight, if one is. */
  passStartedAt: number | undefined;
  lastPassEndedAt: number;
  /** End of a deliberate hold-back (crash loop): no pass is expected before it. */
  backoffUntil: number;
  pollIntervalMs: number;
}

/**
 * Pure: whether the reconcile loop makes progress: no pass stuck for 30 min, and none missing for well beyond the
 * re-check interval (a deliberate crash-loop hold-back does not count as missing).
 */
export function loopHealthy(t: LoopTimes): boolean {
  if (t.passStartedAt !== undefined) return t.now - t.passStartedAt < STUCK_PASS_MS;
  return t.now - Math.max(t.lastPassEndedAt, t.backoffUntil) < 2 * t.pollIntervalMs + MISSING_PASS_GRACE_MS;
}
