import { z } from 'zod';
import { FlotillaError } from './errors.js';
import { commitSchema, deviceUuidSchema, slugSchema } from './ids.js';
import { osVersionSchema } from './os-releases.js';

/**
 * Staged rollouts: a release goes to batches of a fleet's devices in turn (docs/architecture.md, "Rollouts").
 * A batch is a cumulative percentage of the fleet's devices (`5` then `25` then `100`), optionally preceded by the
 * devices carrying a tag (`canary=true`).
 */

export const ROLLOUT_DEFAULTS = {
  /** How long a device must run the release healthy, without a break, to count as succeeded. */
  soakSeconds: 300,
  /** A device not seen since its batch opened stops holding the batch back after this long. */
  offlineTimeoutSeconds: 1800,
  /** Share of a batch's counted devices that must succeed before the next batch opens. */
  successThreshold: 100,
  /** Share of a batch's devices whose failure pauses the rollout (more than this). */
  failureThreshold: 10,
} as const;

const percent = z.number().min(0).max(100);

/** How a rollout proceeds; every field but `batches` has a default (ROLLOUT_DEFAULTS). */
const planFields = {
  /** Cumulative percentages of the fleet's devices (after the tagged batch), increasing, the last one 100. */
  batches: z.array(z.number().gt(0).max(100)).min(1).max(20),
  /** When given, the first batch is the devices with this tag, before the percentages. */
  tag: z.object({ key: z.string().min(1).max(100), value: z.string().max(1000) }).optional(),
  soakSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .default(ROLLOUT_DEFAULTS.soakSeconds),
  offlineTimeoutSeconds: z
    .number()
    .int()
    .min(0)
    .max(7 * 86_400)
    .default(ROLLOUT_DEFAULTS.offlineTimeoutSeconds),
  successThreshold: percent.default(ROLLOUT_DEFAULTS.successThreshold),
  failureThreshold: percent.default(ROLLOUT_DEFAULTS.failureThreshold),
};

function checkBatches<T extends z.ZodType<{ batches: number[] }>>(schema: T) {
  return schema
    .refine((p) => p.batches.every((b, i) => i === 0 || b > (p.batches[i - 1] ?? 0)), {
      message: 'batch percentages must increase',
      path: ['batches'],
    })
    .refine((p) => p.batches.at(-1) === 100, { message: 'the last batch must be 100%', path: ['batches'] });
}

export const rolloutPlanSchema = checkBatches(z.object(planFields));
/** `PUT /fleets/:slug/rollout-policies/:name`: the plan to store. */
export const putRolloutPolicyRequestSchema = checkBatches(z.strictObject(planFields));
export type RolloutPlan = z.output<typeof rolloutPlanSchema>;
export type RolloutPlanInput = z.input<typeof rolloutPlanSchema>;

/** `POST /fleets/:slug/rollouts`: the release (id or commit; still being deployed) and the plan. */
export const createRolloutRequestSchema = checkBatches(
  z.object({ release: z.union([z.number().int(), commitSchema]), ...planFields }),
);

export const rolloutStatusSchema = z.enum(['running', 'paused', 'completed', 'aborted', 'superseded', 'cancelled']);
export type RolloutStatus = z.infer<typeof rolloutStatusSchema>;

export const rolloutDeviceStateSchema = z.enum(['pending', 'succeeded', 'failed', 'offline', 'excused']);
export type RolloutDeviceState = z.infer<typeof rolloutDeviceStateSchema>;

const releaseRefSchema = z.object({ id: z.number().int(), commit: z.string(), version: z.string() });

export const rolloutSchema = z.object({
  id: z.number().int(),
  fleet: slugSchema,
  release: releaseRefSchema,
  /** What devices of batches not yet opened run, and every device after an abort; null: no release. */
  previousRelease: releaseRefSchema.nullable(),
  status: rolloutStatusSchema,
  /** Why it paused, was aborted or cancelled. */
  reason: z.string().nullable(),
  /** True while the release is not yet the fleet's target (still building): no batch has started. */
  waiting: z.boolean(),
  plan: z.object({
    batches: z.array(z.number()),
    tag: z.object({ key: z.string(), value: z.string() }).optional(),
    soakSeconds: z.number(),
    offlineTimeoutSeconds: z.number(),
    successThreshold: z.number(),
    failureThreshold: z.number(),
  }),
  /** Index of the last opened batch. */
  currentBatch: z.number().int(),
  batches: z.array(
    z.object({
      index: z.number().int(),
      /** `canary=true`, `5%` … */
      label: z.string(),
      opened: z.boolean(),
      openedAt: z.string().nullable(),
      devices: z.number().int(),
      pending: z.number().int(),
      succeeded: z.number().int(),
      failed: z.number().int(),
      offline: z.number().int(),
      excused: z.number().int(),
    }),
  ),
  devices: z.array(
    z.object({
      uuid: deviceUuidSchema,
      name: z.string(),
      batch: z.number().int(),
      state: rolloutDeviceStateSchema,
      reason: z.string().nullable(),
    }),
  ),
  events: z.array(
    z.object({ at: z.string(), kind: z.string(), batch: z.number().int().nullable(), message: z.string() }),
  ),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Rollout = z.infer<typeof rolloutSchema>;

/**
 * `POST /fleets/:slug/os-rollouts`: an OS version of the fleet's device type (an OS release of its organization) and
 * the plan. Batch 1 is told at once; each next batch once the previous one's devices committed the OS and ran it for
 * the soak time.
 */
export const createOsRolloutRequestSchema = checkBatches(z.strictObject({ version: osVersionSchema, ...planFields }));
export type CreateOsRolloutRequest = z.input<typeof createOsRolloutRequestSchema>;

/**
 * A fleet's staged OS update: as a rollout, with the OS release in place of the release. A device succeeds once it
 * reports that OS committed (or runs it: flashed with it) for the soak time, and fails when it reports that OS rolled
 * back or failed. Batches not yet opened keep the OS target they had.
 */
export const osRolloutSchema = rolloutSchema
  .omit({ release: true, previousRelease: true, waiting: true, status: true })
  .extend({
    os: z.object({ id: z.number().int(), deviceType: z.string(), version: z.string() }),
    status: z.enum(['running', 'paused', 'completed', 'aborted', 'superseded']),
  });
export type OsRollout = z.infer<typeof osRolloutSchema>;

/**
 * `"5%,25%,100%"` (the `%` is optional) → `[5, 25, 100]`, as the CLI's `--rollout` takes it. VALIDATION_FAILED
 * when a part is not a percentage; the plan schema checks the order.
 */
export function parseRolloutBatches(spec: string): number[] {
  const parts = spec.split(',').map((p) => p.trim());
  return parts.map((part) => {
    const match = /^(\d{1,3}(?:\.\d+)?)%?$/.exec(part);
    const value = match ? Number(match[1]) : Number.NaN;
    if (!(value > 0 && value <= 100))
      throw new FlotillaError(
        'VALIDATION_FAILED',
        `invalid rollout batch ${JSON.stringify(part)}: give percentages such as "5%,25%,100%"`,
      );
    return value;
  });
}

/** `"canary=true"` → `{key: 'canary', value: 'true'}`. */
export function parseRolloutTag(spec: string): { key: string; value: string } {
  const index = spec.indexOf('=');
  if (index <= 0)
    throw new FlotillaError('VALIDATION_FAILED', `invalid rollout tag ${JSON.stringify(spec)}: give key=value`);
  return { key: spec.slice(0, index), value: spec.slice(index + 1) };
}

/** A rollout plan stored on a fleet under a name, for `flotilla deploy <fleet> --rollout-policy <name>`. */
export const rolloutPolicyNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, starting with a letter or digit');

export const rolloutPolicySchema = z.object({
  name: rolloutPolicyNameSchema,
  plan: rolloutSchema.shape.plan,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type RolloutPolicy = z.infer<typeof rolloutPolicySchema>;
