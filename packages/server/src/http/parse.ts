import type { z } from 'zod';

/** Validates a request part with a protocol schema; a ZodError becomes 400 VALIDATION_FAILED in the error handler. */
export function parse<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  return schema.parse(value);
}
