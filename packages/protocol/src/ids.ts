import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/** A device UUID: 32 lowercase hex characters (balena accepts 32 or 62; we generate 32). */
export const deviceUuidSchema = z
  .string()
  .regex(/^[0-9a-f]{32}$|^[0-9a-f]{62}$/, 'must be 32 (or 62) lowercase hex characters');

/** What a user may type to name a device: the full UUID or a unique prefix of at least 7 characters. */
/** A device UUID or a prefix of 7+ hex characters of one. */
export const deviceUuidRefPattern = /^[0-9a-f]{7,62}$/;
/** How users name a device: its UUID, a prefix of 7+ hex characters of it, or its name. */
export const deviceRefSchema = z
  .string()
  .min(1, 'must be a device UUID, a prefix of 7+ hex chars, or a device name')
  .max(200)
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must not contain control characters');

export const slugSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z0-9][a-z0-9_-]*$/, 'lowercase letters, digits, "-" and "_", starting with a letter or digit');

/** A release commit: 32 or 40 hex characters (git-like). */
export const commitSchema = z.string().regex(/^[0-9a-f]{7,64}$/, 'must be a hex commit hash');

export const serviceNameSchema = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, 'letters, digits, ".", "-" and "_"');

export const semverSchema = z
  .string()
  .regex(
    /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/,
    'must be a semantic version',
  );

/**
 * Environment variable names: POSIX-ish, as compose and balena accept them. INVARIANT: not `__proto__`: a target
 * state's environment is an object keyed by name, and assigning that key to a JavaScript object sets its prototype
 * instead (the server's target-state builder, and any device-side reader that copies by assignment), so such a
 * variable was accepted and never reached a container.
 */
export const envNameSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'letters, digits and "_", not starting with a digit')
  .refine((name) => name !== '__proto__', '__proto__ cannot be delivered to devices');

export function generateDeviceUuid(): string {
  return randomBytes(16).toString('hex');
}

/** A random secret for API, device and provisioning keys: 32 bytes, base64url. */
export function generateKey(): string {
  return randomBytes(32).toString('base64url');
}

export function shortUuid(uuid: string): string {
  return uuid.slice(0, 7);
}
