import {
  FlotillaError,
  type UpdateWindow,
  parseDurationSeconds,
  putUpdateWindowRequestSchema,
} from '@flotilla/protocol';

/** The window form's fields as typed. */
export interface WindowFields {
  cron: string;
  /** `2h`, `90m`, `1h30m` or seconds, as `flotilla fleet window set --duration` takes it. */
  duration: string;
  timezone: string;
}

export type WindowInput = { ok: true; body: UpdateWindow } | { ok: false; field: keyof WindowFields; message: string };

/**
 * The request body for `PUT …/update-window`, checked by the route's own schema; or the field at fault and why. The
 * cron expression and time zone are only checked for shape here: whether they parse and ever open is the server's
 * answer (UPDATE_WINDOW_INVALID), the same check the CLI meets.
 */
export function windowInput(fields: WindowFields): WindowInput {
  let durationSeconds: number;
  try {
    durationSeconds = parseDurationSeconds(fields.duration);
  } catch (error) {
    return { ok: false, field: 'duration', message: error instanceof FlotillaError ? error.message : String(error) };
  }
  const parsed = putUpdateWindowRequestSchema.safeParse({
    cron: fields.cron.trim(),
    durationSeconds,
    timezone: fields.timezone.trim(),
  });
  if (parsed.success) return { ok: true, body: parsed.data };
  const issue = parsed.error.issues[0];
  const key = issue?.path[0];
  const field: keyof WindowFields = key === 'durationSeconds' ? 'duration' : key === 'timezone' ? 'timezone' : 'cron';
  const message =
    field === 'duration'
      ? `give between 1m and 7d (${durationSeconds} s given)`
      : field === 'cron'
        ? 'give a cron expression of at most 200 characters, e.g. 0 2 * * *'
        : 'give an IANA time zone name, e.g. Europe/Paris';
  return { ok: false, field, message };
}

/** The browser's own time zone, the form's first value. */
export function browserTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}
