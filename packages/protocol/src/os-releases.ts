import { z } from 'zod';

/**
 * Host OS releases (A/B updates): a raw root filesystem image per device type and version, stored in the server's
 * own registry as an OCI image (as balena's hostapp images are) and recorded by the server. Tenancy: an OS release
 * belongs to an organization, like its fleets; its admins and members push it (observers only read), and only the
 * devices of that organization's fleets get it.
 */

/** An OS version: what `/etc/os-release` says (`2.1.0`, `2024.10-rc1+rev3`); also a path segment, so no `/`. */
export const osVersionSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'letters, digits, ".", "_", "+" and "-"');

/** Device types as fleets and devices name them (`raspberrypi4-64`); also the last part of a repository name. */
export const osDeviceTypeSchema = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, 'lowercase letters and digits, separated by ".", "_" or "-"');

/** Media type of the one layer of an OS release image: the raw slot image (an ext4 filesystem), uncompressed. */
export const OS_SLOT_IMAGE_MEDIA_TYPE = 'application/vnd.flotilla.os.slot.v1.ext4';
/** Media type of its config blob: `{deviceType, version}` (osReleaseImageConfigSchema). */
export const OS_RELEASE_CONFIG_MEDIA_TYPE = 'application/vnd.flotilla.os.config.v1+json';
export const osReleaseImageConfigSchema = z.object({ deviceType: osDeviceTypeSchema, version: osVersionSchema });

/**
 * The registry repository of an organization's OS releases for a device type. INVARIANT: named by the organization's
 * id, which is never reused, and its first part holds a "." that no fleet slug can (slugs are `[a-z0-9_-]`), so it is
 * never a fleet's `<slug>/<service>` repository.
 */
export function osRepository(organizationId: number, deviceType: string): string {
  return `os.${organizationId}/${deviceType}`;
}

/** `os.<org id>/<device type>` → its parts; undefined for any other repository name. */
export function parseOsRepository(repository: string): { organizationId: number; deviceType: string } | undefined {
  const m = /^os\.([1-9]\d{0,11})\/([a-z0-9]+(?:[._-][a-z0-9]+)*)$/.exec(repository);
  return m?.[1] && m[2] ? { organizationId: Number(m[1]), deviceType: m[2] } : undefined;
}

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a hex sha256');

/** `POST /api/v1/organizations/:org/os-releases`: record an OS release image the CLI pushed to `osRepository`. */
export const createOsReleaseRequestSchema = z.strictObject({
  deviceType: osDeviceTypeSchema,
  version: osVersionSchema,
  /** The manifest's digest in `osRepository(org, deviceType)`: `sha256:<hex>`. */
  manifestDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a sha256: digest'),
});
export type CreateOsReleaseRequest = z.infer<typeof createOsReleaseRequestSchema>;

export const osReleaseSchema = z.object({
  id: z.number().int(),
  organization: z.string(),
  deviceType: z.string(),
  version: z.string(),
  /** Where the image is: `<registry host>/os.<org id>/<device type>@sha256:…`. */
  image: z.string(),
  manifestDigest: z.string(),
  /** Hex sha256 and bytes of the raw slot image (the layer): what the device writes and checks. */
  sha256: z.string(),
  size: z.number().int(),
  createdAt: z.string(),
  /** Username of who pushed it; null when that user was deleted. */
  createdBy: z.string().nullable(),
});
export type OsRelease = z.infer<typeof osReleaseSchema>;

export const listOsReleasesQuerySchema = z.object({
  deviceType: osDeviceTypeSchema.optional(),
  organization: z.string().min(1).max(200).optional(),
});

/** `PUT /api/v1/devices/:uuid/os` and `PUT /api/v1/fleets/:slug/os`: the host OS the device(s) must run. */
export const setTargetOsRequestSchema = z.strictObject({ version: osVersionSchema });

export const targetOsAnswerSchema = z.object({
  deviceType: z.string(),
  version: z.string(),
  /** UUIDs of the devices told (one for a device; for a fleet, each of its devices of the release's device type). */
  devices: z.array(z.string()),
});
export type TargetOsAnswer = z.infer<typeof targetOsAnswerSchema>;

/**
 * `DELETE /api/v1/devices/:uuid/os` and `DELETE /api/v1/fleets/:slug/os`: the UUIDs of the devices whose OS target
 * was cleared (those that had one). A device that already installed the OS keeps it: clearing asks for nothing new.
 */
export const clearTargetOsAnswerSchema = z.object({ devices: z.array(z.string()) });
export type ClearTargetOsAnswer = z.infer<typeof clearTargetOsAnswerSchema>;

/**
 * The device's OS target in its target state (`os`, Flotilla only; absent: no OS update asked). `url` is the
 * device-authenticated download of the slot image, relative to the device's API endpoint (DEVICE_ROUTES.osImage),
 * and honours `Range` so a cut download resumes.
 */
export const targetOsSchema = z.object({
  version: osVersionSchema,
  url: z.string().min(1).max(1000),
  sha256: sha256Hex,
  size: z.number().int().positive(),
});
export type TargetOs = z.infer<typeof targetOsSchema>;
