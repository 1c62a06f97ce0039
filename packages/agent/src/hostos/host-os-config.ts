import { isAbsolute } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { z } from 'zod';

/** The two root filesystem slots of an A/B host. */
export const SLOTS = ['a', 'b'] as const;
export type Slot = (typeof SLOTS)[number];

export function otherSlot(slot: Slot): Slot {
  return slot === 'a' ? 'b' : 'a';
}

const absolutePath = z.string().refine(isAbsolute, 'an absolute path');

/**
 * config.json `hostOS`: present only on a host built for A/B updates. The OS build writes it (the slots' block
 * devices and the bootloader are properties of the image, not of the fleet), so the control plane never sends it.
 */
export const hostOsConfigSchema = z
  .strictObject({
    slots: z.strictObject({ a: absolutePath, b: absolutePath }),
    bootloader: z.discriminatedUnion('type', [
      z.strictObject({ type: z.literal('grub'), grubenv: absolutePath }),
      z.strictObject({ type: z.literal('uboot'), fwEnvConfig: absolutePath }),
      /** Tests and development hosts: a JSON file read by a boot script of one's own. */
      z.strictObject({ type: z.literal('file'), path: absolutePath }),
    ]),
    /** How long the new OS has, on its trial boot, to pass its health checks (engine up, control plane connected). */
    trialHealthTimeoutSeconds: z.number().int().min(10).max(3600).default(300),
    /** Where the running slot is named on the kernel command line: `<key>=a|b` (the grub.cfg/U-Boot script sets it). */
    cmdlineKey: z
      .string()
      .regex(/^[a-z0-9_.-]+$/)
      .default('flotilla.slot'),
  })
  .refine((c) => c.slots.a !== c.slots.b, { message: 'slots a and b must be different devices', path: ['slots'] });
export type HostOsConfig = z.infer<typeof hostOsConfigSchema>;

/**
 * config.json's raw `hostOS` value → the host OS config, `undefined` when the key is absent (no A/B host).
 * A present but wrong value throws HOST_OS_CONFIG_INVALID naming each problem; the agent then runs without OS
 * updates rather than not at all (INVARIANT: a bad hostOS never stops the apps being managed).
 */
export function parseHostOsConfig(raw: unknown): HostOsConfig | undefined {
  if (raw === undefined) return undefined;
  const parsed = hostOsConfigSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => `hostOS.${i.path.join('.')}: ${i.message}`).join('; ');
  throw new FlotillaError('HOST_OS_CONFIG_INVALID', `config.json ${issues}`, { details: parsed.error.issues });
}
