import {
  type CreateOsRolloutRequest,
  createOsRolloutRequestSchema,
  type FlotillaError,
  parseRolloutBatches,
  parseRolloutTag,
  type RolloutPolicy,
} from '@flotilla/protocol';

/** How the fleet's install goes: every device at once (`PUT /fleets/:slug/os`), or staged (an OS rollout). */
export type InstallMode = 'all' | 'batches' | 'policy';

/** The staged install's fields as typed, as the CLI's `--rollout`, `--rollout-tag`, `--soak`, `--rollout-policy`. */
export interface StagedFields {
  batches: string;
  tag: string;
  soak: string;
  policy: string;
}

export const STAGED_DEFAULTS: StagedFields = { batches: '10%,100%', tag: '', soak: '300', policy: '' };

export type StagedInput =
  | { ok: true; body: CreateOsRolloutRequest }
  | { ok: false; field: keyof StagedFields; message: string };

/**
 * Pure: the `POST /fleets/:slug/os-rollouts` body for `version`, or which field is wrong and why, checked with the
 * route's own schema before anything is sent. A policy's stored plan is taken whole, as `--rollout-policy` does.
 */
export function stagedInstall(
  version: string,
  mode: Exclude<InstallMode, 'all'>,
  fields: StagedFields,
  policies: RolloutPolicy[],
): StagedInput {
  if (mode === 'policy') {
    const policy = policies.find((p) => p.name === fields.policy);
    if (!policy) return { ok: false, field: 'policy', message: 'Choose one of the fleet’s rollout policies.' };
    return checked({ version, ...policy.plan }, 'policy');
  }
  let batches: number[];
  try {
    batches = parseRolloutBatches(fields.batches);
  } catch (e) {
    return { ok: false, field: 'batches', message: (e as FlotillaError).message };
  }
  let tag: { key: string; value: string } | undefined;
  if (fields.tag.trim() !== '') {
    try {
      tag = parseRolloutTag(fields.tag.trim());
    } catch (e) {
      return { ok: false, field: 'tag', message: (e as FlotillaError).message };
    }
  }
  const soak = fields.soak.trim();
  if (!/^\d+$/.test(soak)) return { ok: false, field: 'soak', message: 'Give the soak time in whole seconds.' };
  return checked({ version, batches, ...(tag ? { tag } : {}), soakSeconds: Number(soak) }, 'batches');
}

function checked(body: CreateOsRolloutRequest, fallback: keyof StagedFields): StagedInput {
  const parsed = createOsRolloutRequestSchema.safeParse(body);
  if (parsed.success) return { ok: true, body };
  const issue = parsed.error.issues[0];
  const where = issue?.path[0];
  const field = where === 'soakSeconds' ? 'soak' : where === 'tag' ? 'tag' : fallback;
  return { ok: false, field, message: issue?.message ?? 'invalid' };
}

/** `10%, 100%` and, with a tag, `canary=true, 10%, 100%`: the batches in the order they open. */
export function batchesInWords(body: CreateOsRolloutRequest): string {
  return [...(body.tag ? [`${body.tag.key}=${body.tag.value}`] : []), ...body.batches.map((b) => `${b}%`)].join(', ');
}
