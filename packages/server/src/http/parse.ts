import { FlotillaError } from '@flotilla/protocol';
import type { z } from 'zod';

/**
 * Validates a request part with a protocol schema; a ZodError becomes 400 VALIDATION_FAILED in the error handler.
 * INVARIANT: both dialects answer alike, so a NUL character is refused here, before any query runs: PostgreSQL
 * cannot store it and SQLite would.
 */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.parse(value);
  if (containsNul(parsed)) throw new FlotillaError('VALIDATION_FAILED', 'the request contains a NUL character');
  return parsed;
}

/** True when any string in a parsed request part holds a NUL character. */
export function containsNul(value: unknown, depth = 0): boolean {
  if (typeof value === 'string') return value.includes('\u0000');
  if (depth > 32 || value === null || typeof value !== 'object') return false;
  // Only what a parser produced: arrays and plain objects (a streamed body or a Buffer is not walked).
  const proto = Object.getPrototypeOf(value) as unknown;
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return false;
  for (const [key, item] of Object.entries(value))
    if (key.includes('\u0000') || containsNul(item, depth + 1)) return true;
  return false;
}
