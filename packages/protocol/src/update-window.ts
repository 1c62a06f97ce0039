import { Cron } from 'croner';
import { z } from 'zod';
import { FlotillaError } from './errors.js';

/**
 * Maintenance windows ("download now, apply later"): when a device may apply an update. A window opens at every
 * occurrence of a cron expression in an IANA time zone and stays open for a duration; occurrences closer together
 * than the duration make one longer window. The same evaluation runs on the server (validation, what the user is
 * shown) and on the device (whether it may apply now), so both read a window alike.
 *
 * Cron: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first. A local time that does not
 * exist (the hour skipped when daylight saving time starts) opens the window an hour later; a local time that occurs
 * twice (when it ends) opens it at both (an extra window, never a missing one).
 */

export const UPDATE_WINDOW_MIN_SECONDS = 60;
export const UPDATE_WINDOW_MAX_SECONDS = 7 * 24 * 3600;

/** A window as the user sets it and as the device receives it in its target state. */
export const updateWindowSchema = z.object({
  /** When the window opens: a cron expression, read in `timezone`. */
  cron: z.string().min(1).max(200),
  /** How long it stays open after each opening. */
  durationSeconds: z.number().int().min(UPDATE_WINDOW_MIN_SECONDS).max(UPDATE_WINDOW_MAX_SECONDS),
  /** IANA time zone name (`Europe/Paris`, `UTC`). */
  timezone: z.string().min(1).max(100),
});
export type UpdateWindow = z.infer<typeof updateWindowSchema>;

/** `PUT /fleets/:slug/update-window` and `PUT /devices/:uuid/update-window`. */
export const putUpdateWindowRequestSchema = updateWindowSchema.strict();

/** Whether updates may be applied at `now`, and when that changes next (epoch ms; opensAt null: never). */
export type WindowState = { open: true; closesAt: number } | { open: false; opensAt: number | null };

function compile(window: UpdateWindow): Cron {
  // paused: nothing is scheduled, the expression is only evaluated.
  return new Cron(window.cron, { timezone: window.timezone, mode: '5-or-6-parts', paused: true });
}

/**
 * Throws `UPDATE_WINDOW_INVALID` unless the expression parses, the time zone exists and the window opens at some
 * point after `now`.
 */
export function checkUpdateWindow(window: UpdateWindow, now = Date.now()): void {
  try {
    new Intl.DateTimeFormat('en', { timeZone: window.timezone });
  } catch {
    throw new FlotillaError('UPDATE_WINDOW_INVALID', `unknown time zone "${window.timezone}" (give an IANA name)`);
  }
  let cron: Cron;
  try {
    cron = compile(window);
  } catch (error) {
    throw new FlotillaError(
      'UPDATE_WINDOW_INVALID',
      `invalid cron expression "${window.cron}": ${(error as Error).message.replace(/^CronPattern: /, '')}`,
    );
  }
  if (cron.nextRun(new Date(now)) === null)
    throw new FlotillaError('UPDATE_WINDOW_INVALID', `the cron expression "${window.cron}" never occurs`);
}

/** Bound of the occurrences looked at in one evaluation (a safety net for dense expressions, not a rule). */
const MAX_STEPS = 10_000;
/** The largest shift of a local clock (daylight saving time): how far back the slow path starts its scan. */
const CLOCK_SHIFT_MS = 3_600_000;

/**
 * Pure: the window's state at `now`. Open when some occurrence `s` has `s <= now < s + duration`.
 * WARNING: throws on an invalid window; callers that read one from outside check it first (`checkUpdateWindow`).
 */
export function updateWindowState(window: UpdateWindow, now: number): WindowState {
  const cron = compile(window);
  const duration = window.durationSeconds * 1000;
  const next = (after: number): number | null => {
    const found = cron.nextRun(new Date(after))?.getTime() ?? null;
    // WARNING: in the hour a local clock repeats (DST end) croner may map the second instance of a local time to
    // the first, before `after`; the second one is a clock shift later.
    if (found !== null && found <= after) return found + CLOCK_SHIFT_MS > after ? found + CLOCK_SHIFT_MS : null;
    return found;
  };
  // Fast path: the first occurrence after now - duration is the earliest whose window could still hold `now`.
  const first = next(now - duration);
  if (first !== null && first <= now) return { open: true, closesAt: closing(first, duration, next) };
  // WARNING: croner searches in local time, so a reference just after a skipped hour (DST start) misses the
  // occurrence that was moved past it, which a reference before the skip finds: scan from an hour earlier, so the
  // answer does not depend on where the search started.
  let s = next(now - duration - CLOCK_SHIFT_MS);
  for (let i = 0; i < MAX_STEPS && s !== null; i++) {
    if (s > now) return { open: false, opensAt: s };
    if (s + duration > now) return { open: true, closesAt: closing(s, duration, next) };
    s = next(s);
  }
  return { open: false, opensAt: s };
}

/** Occurrences chained to find when an open window closes: beyond it, the answer is a lower bound. */
const MAX_CHAINED = 100;

/**
 * When a window opened at `start` closes: occurrences that open before it closes extend it (up to MAX_CHAINED of
 * them; an expression denser than its duration is open for good, and reported open for at least that long).
 */
function closing(start: number, duration: number, next: (after: number) => number | null): number {
  let closesAt = start + duration;
  let s: number | null = start;
  for (let i = 0; i < MAX_CHAINED; i++) {
    s = next(s);
    if (s === null || s > closesAt) break;
    closesAt = Math.max(closesAt, s + duration);
  }
  return closesAt;
}

/** `2h`, `90m`, `1h30m`, `45s`, `3600` (seconds) → seconds; `VALIDATION_FAILED` otherwise. */
export function parseDurationSeconds(spec: string): number {
  const text = spec.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  if (!match || text === '')
    throw new FlotillaError('VALIDATION_FAILED', `invalid duration ${JSON.stringify(spec)}: give e.g. 2h, 90m, 1h30m`);
  const [, d = '0', h = '0', m = '0', s = '0'] = match;
  return Number(d) * 86_400 + Number(h) * 3_600 + Number(m) * 60 + Number(s);
}

/** `7200` → `2h`, `5400` → `1h30m`: the shortest form `parseDurationSeconds` reads back. */
export function formatDurationSeconds(seconds: number): string {
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('') || '0s';
}
