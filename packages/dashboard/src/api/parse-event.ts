import type { z } from 'zod';

/**
 * The `data` of a server-sent event, checked against its protocol schema; undefined (and a console warning) when
 * it does not match, so one malformed event cannot break the page that listens.
 */
export function parseEvent<T extends z.ZodType>(schema: T, data: string, what: string): z.output<T> | undefined {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    console.warn(`a ${what} event is not JSON; ignored`);
    return undefined;
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    console.warn(`a ${what} event does not match the protocol; ignored`, parsed.error.issues.slice(0, 3));
    return undefined;
  }
  return parsed.data;
}
