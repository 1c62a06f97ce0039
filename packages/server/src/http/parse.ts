import { FlotillaError } from '@flotilla/protocol';
import type { z } from 'zod';
import { containsNul } from '../errors/error-handler.js';

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
