import {
  type ConfigSource,
  type EnvSource,
  type Release,
  setConfigVarRequestSchema,
  setEnvVarRequestSchema,
} from '@flotilla/protocol';
import type { z } from 'zod';

/** Environment variables (per service where set so) or configuration variables (the agent's and host's settings). */
export type VariableKind = 'env' | 'config';

/** What a variable form holds; `service` '' means all services (and is all a config variable has). */
export interface Draft {
  name: string;
  value: string;
  service: string;
}

export type DraftField = keyof Draft;
export type SetBody = z.input<typeof setEnvVarRequestSchema> | z.input<typeof setConfigVarRequestSchema>;

const LABELS: Record<DraftField, string> = { name: 'Name', value: 'Value', service: 'Service' };

/**
 * The request body a draft becomes, or what is wrong with each field, by the protocol's own schema: the one the
 * server parses the request with, so the form refuses exactly what the server would, in the same words.
 */
export function checkDraft(
  kind: VariableKind,
  draft: Draft,
): { body: SetBody; errors?: undefined } | { body?: undefined; errors: Partial<Record<DraftField, string>> } {
  const parsed =
    kind === 'env'
      ? setEnvVarRequestSchema.safeParse({
          name: draft.name,
          value: draft.value,
          ...(draft.service === '' ? {} : { service: draft.service }),
        })
      : setConfigVarRequestSchema.safeParse({ name: draft.name, value: draft.value });
  if (parsed.success) return { body: parsed.data };
  const errors: Partial<Record<DraftField, string>> = {};
  for (const issue of parsed.error.issues) {
    const field = issue.path[0];
    if (field !== 'name' && field !== 'value' && field !== 'service') continue;
    errors[field] ??= `${LABELS[field]}: ${issue.message}`;
  }
  return { errors };
}

/** Where an effective value comes from, as the pages say it: `fleet`, `fleet · web`, `device · web`, `release`. */
export function sourceLabel(source: EnvSource | ConfigSource, service: string | null): string {
  if (source === 'fleet-service') return `fleet · ${service ?? ''}`;
  if (source === 'device-service') return `device · ${service ?? ''}`;
  return source;
}

/** Set on the device itself (so the device's page edits it), as opposed to inherited from the fleet or release. */
export function isDeviceSource(source: EnvSource | ConfigSource): boolean {
  return source === 'device' || source === 'device-service';
}

/** The service names of some releases, each once, sorted: what a fleet variable may be scoped to. */
export function servicesOf(
  releases: readonly { services: readonly Pick<Release['services'][number], 'name'>[] }[],
): string[] {
  return [...new Set(releases.flatMap((r) => r.services.map((s) => s.name)))].sort();
}

/** Values are shown whole up to this many characters on one line; longer or multi-line ones open on demand. */
export const PREVIEW_CHARS = 80;

/** The start of a value for a table cell, and whether there is more to it than that. */
export function previewOf(value: string): { text: string; more: boolean } {
  const newline = value.indexOf('\n');
  const firstLine = newline === -1 ? value : value.slice(0, newline);
  if (firstLine.length > PREVIEW_CHARS) return { text: `${firstLine.slice(0, PREVIEW_CHARS)}…`, more: true };
  return { text: newline === -1 ? firstLine : `${firstLine}…`, more: newline !== -1 };
}
