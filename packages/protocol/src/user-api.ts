import { z } from 'zod';
import { composeFileSchema } from './compose.js';
import { HOST_OS_UPDATE_PHASES } from './device-api.js';
import { deviceActionSchema } from './device-connection.js';
import { commitSchema, deviceUuidSchema, envNameSchema, semverSchema, serviceNameSchema, slugSchema } from './ids.js';
import { rolloutStatusSchema } from './rollouts.js';
import { updateWindowSchema } from './update-window.js';

/**
 * The user-facing REST API under /api/v1: request bodies (strict: a typo in a field is an error, not ignored) and
 * the resources returned. Timestamps are ISO-8601 strings; ids are integers; devices are addressed by UUID (or a
 * unique prefix of 7+ characters), fleets by slug, releases by id or commit (prefix allowed).
 */

const isoDate = z.string();
const byteCount = z.number().int().nonnegative();
const name = z.string().trim().min(1).max(200);

// --------------------------------------------------------------------------------------------- identity and access
/**
 * A member's role in an organization decides what they may do there:
 * - `admin`: everything, including members, invitations and provisioning keys;
 * - `member`: the organization's fleets, devices and releases, and shells, tunnels and public URLs on its devices;
 * - `observer`: reads only (fleets, devices, releases, logs, the remote-access audit log); changes nothing and
 *   opens no shell, tunnel or public URL.
 */
export const roleSchema = z.enum(['admin', 'member', 'observer']);
export type Role = z.infer<typeof roleSchema>;
/** Roles that may change things in their organization (every write route). */
export const WRITER_ROLES: readonly Role[] = ['admin', 'member'];
/** Roles that may open a shell or tunnel on, or publish, the organization's devices. */
export const REMOTE_ACCESS_ROLES: readonly Role[] = ['admin', 'member'];

export const loginRequestSchema = z.strictObject({
  username: z.string().min(1).max(200),
  password: z.string().min(1).max(1000),
});
export const loginResponseSchema = z.object({ token: z.string(), expiresAt: isoDate, user: z.lazy(() => userSchema) });

export const userSchema = z.object({
  id: z.number().int(),
  username: z.string(),
  email: z.string().nullable(),
  createdAt: isoDate,
});
export type User = z.infer<typeof userSchema>;

export const createUserRequestSchema = z.strictObject({
  username: z
    .string()
    .min(2)
    .max(100)
    .regex(/^[a-zA-Z0-9_.@-]+$/),
  email: z.email().optional(),
  password: z.string().min(8).max(1000),
  /** Whether the new user may create users too. */
  serverAdmin: z.boolean().optional(),
});

export const organizationSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  handle: z.string(),
  role: roleSchema.optional(),
  createdAt: isoDate,
});
export type Organization = z.infer<typeof organizationSchema>;
export const createOrganizationRequestSchema = z.strictObject({ name, handle: slugSchema.optional() });
export const memberSchema = z.object({ user: userSchema, role: roleSchema });
export type Member = z.infer<typeof memberSchema>;
/**
 * `PATCH /organizations/:org/members/:userId` (admins): the member's new role, in force at once everywhere: a
 * member lowered to observer loses their open shells and tunnels, as a removed member loses every stream.
 */
export const setMemberRoleRequestSchema = z.strictObject({ role: roleSchema });

/**
 * Invitations: an organization admin invites a username; the answer (202, empty) is the same whether or not the
 * user exists, so usernames cannot be probed, and nobody joins an organization without accepting. Routes: USER_ROUTES
 * invite, listInvitations, acceptInvitation, declineInvitation.
 */
export const inviteRequestSchema = z.strictObject({
  username: z.string().min(1).max(200),
  role: roleSchema.default('member'),
});
export const inviteResponseSchema = z.object({});
/** A pending invitation, as its invitee sees it. */
export const invitationSchema = z.object({
  id: z.number().int(),
  organization: z.object({ id: z.number().int(), handle: z.string(), name: z.string() }),
  role: roleSchema,
  invitedBy: z.string().nullable(),
  createdAt: isoDate,
  expiresAt: isoDate,
});
export type Invitation = z.infer<typeof invitationSchema>;
export const acceptInvitationResponseSchema = z.object({ organization: organizationSchema });

export const whoamiResponseSchema = z.object({
  user: userSchema,
  organizations: z.array(organizationSchema),
  authMethod: z.enum(['session', 'api-key']),
  /** Server administrators may create users. */
  serverAdmin: z.boolean(),
});
export type WhoamiResponse = z.infer<typeof whoamiResponseSchema>;

export const apiKeySchema = z.object({
  id: z.number().int(),
  name: z.string(),
  description: z.string().nullable(),
  createdAt: isoDate,
  expiresAt: isoDate.nullable(),
  lastUsedAt: isoDate.nullable(),
});
export type ApiKey = z.infer<typeof apiKeySchema>;
export const createApiKeyRequestSchema = z.strictObject({
  name,
  description: z.string().max(1000).optional(),
  expiresAt: isoDate.optional(),
});
/** The secret `key` appears in this response only; it is stored hashed. */
export const createdApiKeySchema = apiKeySchema.extend({ key: z.string() });

// -------------------------------------------------------------------------------------------------------- fleets
export const fleetSchema = z.object({
  id: z.number().int(),
  uuid: z.string(),
  name: z.string(),
  slug: z.string(),
  deviceType: z.string(),
  organization: z.string(),
  /** The release devices run unless pinned: the pinned one, else the latest successful. */
  targetRelease: z.object({ id: z.number().int(), commit: z.string(), version: z.string() }).nullable(),
  pinnedRelease: z.string().nullable(),
  deviceCount: z.number().int().optional(),
  onlineDeviceCount: z.number().int().optional(),
  createdAt: isoDate,
  /** The fleet's maintenance window, its devices' default (`update-window.ts`); null: updates apply at once. */
  updateWindow: updateWindowSchema.nullable().default(null),
  /**
   * The host OS the fleet's devices of its device type must run (set for the whole fleet, or by an OS rollout that
   * completed): a device registered later starts with it. null: none.
   */
  targetOs: z.object({ deviceType: z.string(), version: z.string() }).nullable().default(null),
  /**
   * The fleet's latest staged rollout in short (`GET /fleets/:slug/rollout` has the whole of it), so a page can say one
   * is running without asking for one that may not exist; null: the fleet never had one.
   */
  rollout: z
    .object({
      id: z.number().int(),
      status: rolloutStatusSchema,
      release: z.object({ id: z.number().int(), commit: z.string(), version: z.string() }),
    })
    .nullable()
    .default(null),
  /** The fleet's latest staged OS rollout in short (`GET /fleets/:slug/os-rollout`), as `rollout`; null: none ever. */
  osRollout: z
    .object({
      id: z.number().int(),
      status: z.enum(['running', 'paused', 'completed', 'aborted', 'superseded']),
      version: z.string(),
    })
    .nullable()
    .default(null),
});
export type Fleet = z.infer<typeof fleetSchema>;
export const createFleetRequestSchema = z.strictObject({
  name,
  slug: slugSchema.optional(),
  deviceType: z.string().min(1).max(100).default('generic-amd64'),
  /** Organization handle; defaults to the caller's only/first organization. */
  organization: z.string().optional(),
});
export const updateFleetRequestSchema = z.strictObject({
  name: name.optional(),
  /** Release id or commit to pin devices to; null follows the latest successful release. */
  pinnedRelease: z.union([z.number().int(), commitSchema, z.null()]).optional(),
});

export const provisioningKeySchema = z.object({
  id: z.number().int(),
  name: z.string().nullable(),
  createdAt: isoDate,
  expiresAt: isoDate.nullable(),
  revokedAt: isoDate.nullable(),
  /** Who made the key (null for keys made before this was recorded); it works only while they administer the organization. */
  createdBy: z.object({ id: z.number().int(), username: z.string() }).nullable(),
});
export const createProvisioningKeyRequestSchema = z.strictObject({
  name: z.string().max(200).optional(),
  expiresAt: isoDate.optional(),
});
export const createdProvisioningKeySchema = provisioningKeySchema.extend({ key: z.string() });

// ------------------------------------------------------------------------------------------------------- devices
/** The device went back by itself from a release that failed after it was applied, and refuses that release. */
export const deviceRollbackViewSchema = z.object({
  /** Commit of the release the device rolled back from (and refuses until a new release, a pin or a forced update). */
  fromCommit: z.string(),
  /** Commit of the release it went back to. */
  toCommit: z.string(),
  reason: z.string(),
  /** The service that failed, when one did. */
  service: z.string().nullable(),
  /** That service's last output lines, oldest first. */
  logs: z.array(z.string()),
  /** When the device decided to roll back. */
  at: z.string(),
});
export type DeviceRollbackView = z.infer<typeof deviceRollbackViewSchema>;

export const deviceSchema = z.object({
  id: z.number().int(),
  uuid: deviceUuidSchema,
  name: z.string(),
  fleet: z.string(),
  deviceType: z.string(),
  isOnline: z.boolean(),
  lastSeenAt: isoDate.nullable(),
  status: z.string().nullable(),
  /** The last report said the update failed (`update_failed`); cleared by one saying it did not. */
  updateFailed: z.boolean().default(false),
  pinnedRelease: z.string().nullable(),
  /** Commit of the release the device reports as fully applied. */
  runningRelease: z.string().nullable(),
  targetRelease: z.string().nullable(),
  osVersion: z.string().nullable(),
  osVariant: z.string().nullable(),
  agentVersion: z.string().nullable(),
  ipAddress: z.string().nullable(),
  macAddress: z.string().nullable(),
  metrics: z.object({
    cpuUsage: z.number().nullable(),
    cpuTemp: z.number().nullable(),
    memoryUsage: z.number().nullable(),
    memoryTotal: z.number().nullable(),
    storageUsage: z.number().nullable(),
    storageTotal: z.number().nullable(),
  }),
  /** Services as last reported: `{ [serviceName]: { status, image, downloadProgress } }`. */
  services: z
    .record(
      z.string(),
      z.object({
        status: z.string(),
        image: z.string(),
        releaseCommit: z.string().nullable(),
        downloadProgress: z.number().nullable(),
      }),
    )
    .default({}),
  createdAt: isoDate,
  /** Set while the device refuses a release it rolled back from (Flotilla agents only); null otherwise. */
  rollback: deviceRollbackViewSchema.nullable().default(null),
  /** The host OS version the device is told to run (`device os-update`); null when none was set. */
  targetOs: z.string().nullable().default(null),
  /** Where the device's host OS update stands (Flotilla agents on an A/B host); null when it reported none. */
  osUpdate: z
    .object({
      phase: z.enum(HOST_OS_UPDATE_PHASES),
      version: z.string().nullable(),
      progress: z.number().nullable(),
      errorCode: z.string().nullable(),
      error: z.string().nullable(),
    })
    .nullable()
    .default(null),
  /**
   * Bytes downloaded for updates by delta (the delta, plus the pull after a fallback) beside what plain pulls of the
   * same layers would have downloaded: for the release of the last reported delta, and over all of them. Absent from
   * servers before this field; updates without a delta are not counted.
   */
  updateBytes: z
    .object({
      last: z.object({ release: z.string().nullable(), downloaded: byteCount, pullBytes: byteCount }).nullable(),
      total: z.object({ downloaded: byteCount, pullBytes: byteCount }),
    })
    .optional(),
  /**
   * The window the device applies updates in: its own (`source: 'device'`) or else its fleet's; null: none, updates
   * apply at once.
   */
  updateWindow: updateWindowSchema
    .extend({ source: z.enum(['device', 'fleet']) })
    .nullable()
    .default(null),
  /** While a downloaded update waits for the window (as the device last reported): when the window opens. */
  updateWindowOpensAt: isoDate.nullable().default(null),
});
export type Device = z.infer<typeof deviceSchema>;
export const updateDeviceRequestSchema = z.strictObject({
  name: name.optional(),
  /** Move to another fleet of the same organization (slug). */
  fleet: slugSchema.optional(),
  pinnedRelease: z.union([z.number().int(), commitSchema, z.null()]).optional(),
});

export const deviceActionRequestSchema = z.strictObject({
  action: deviceActionSchema,
  service: serviceNameSchema.optional(),
  force: z.boolean().optional(),
  /** Seconds the action stays deliverable to an offline device. */
  ttlSeconds: z
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 3600)
    .default(3600),
});
export const deviceActionResponseSchema = z.object({
  id: z.number().int(),
  action: deviceActionSchema,
  service: z.string().nullable(),
  status: z.enum(['pending', 'delivered', 'done', 'failed', 'expired']),
  /** Why the device refused or failed the action, when it did. */
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  createdAt: isoDate,
  expiresAt: isoDate,
});

// ------------------------------------------------------------------------------------------------------ releases
export const releaseStatusSchema = z.enum(['running', 'success', 'failed']);
export type ReleaseStatus = z.infer<typeof releaseStatusSchema>;

export const releaseServiceSchema = z.object({
  id: z.number().int(),
  name: serviceNameSchema,
  image: z.string(),
  imageId: z.number().int(),
  /**
   * Bytes the image's manifest names (config plus layers, compressed as pushed), read from this server's registry;
   * null when it does not hold the image (not pushed yet, another registry, or an index without the fleet's platform).
   */
  imageSize: z.number().int().nonnegative().nullable(),
});
export const releaseSchema = z.object({
  id: z.number().int(),
  fleet: z.string(),
  commit: z.string(),
  version: z.string(),
  status: releaseStatusSchema,
  isFinal: z.boolean(),
  composition: composeFileSchema,
  services: z.array(releaseServiceSchema),
  notes: z.string().nullable(),
  createdAt: isoDate,
  /** Who created (deployed) it; null for releases made before this was recorded, or whose user was deleted. */
  createdBy: z.object({ id: z.number().int(), username: z.string() }).nullable(),
});
export type Release = z.infer<typeof releaseSchema>;
export const createReleaseRequestSchema = z.strictObject({
  commit: commitSchema.optional(),
  version: semverSchema.optional(),
  composition: composeFileSchema,
  /** Image of each compose service, pinned by digest: `<registry>/<repo>@sha256:<hex>`. Filled now or on finish. */
  images: z.record(serviceNameSchema, z.string().min(1)).default({}),
  status: releaseStatusSchema.default('running'),
  isFinal: z.boolean().default(true),
  notes: z.string().max(10_000).optional(),
});
export const updateReleaseRequestSchema = z.strictObject({
  status: releaseStatusSchema.optional(),
  images: z.record(serviceNameSchema, z.string().min(1)).optional(),
  notes: z.string().max(10_000).optional(),
});

// ----------------------------------------------------------------------------------------- variables and tags
export const variableScopeSchema = z.enum(['fleet', 'device']);
export const envVarSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  value: z.string(),
  /** Set when the variable applies to one service only. */
  service: z.string().nullable(),
  createdAt: isoDate,
});
export type EnvVar = z.infer<typeof envVarSchema>;
export const setEnvVarRequestSchema = z.strictObject({
  name: envNameSchema,
  value: z.string().max(64 * 1024),
  service: serviceNameSchema.optional(),
});
export const setConfigVarRequestSchema = z.strictObject({
  // Lower case is allowed after the prefix: balena's host settings keep config.txt's own spelling
  // (`BALENA_HOST_CONFIG_gpu_mem`, `BALENA_HOST_CONFIG_dtoverlay`).
  name: z
    .string()
    .max(200)
    .regex(/^(FLOTILLA|BALENA|RESIN)_[A-Za-z0-9_]+$/, 'FLOTILLA_, BALENA_ or RESIN_, then letters, digits and "_"'),
  value: z.string().max(64 * 1024),
});
export const tagSchema = z.object({ key: z.string(), value: z.string() });
/** A tag in the fleet-wide view: tags belong to devices, so each names its device's UUID. */
export const fleetTagSchema = tagSchema.extend({ device: z.string() });
export const setTagRequestSchema = z.strictObject({ key: z.string().min(1).max(100), value: z.string().max(1000) });

// ---------------------------------------------------------------------------------------------------------- lists
export function listOf<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item) });
}

// ------------------------------------------------------------------------------------------------------ logs
export const logEntrySchema = z.object({
  timestamp: z.number().int(),
  createdAt: z.number().int(),
  message: z.string(),
  isSystem: z.boolean(),
  isStdErr: z.boolean(),
  serviceName: z.string().nullable(),
});
export type LogEntry = z.infer<typeof logEntrySchema>;

// ------------------------------------------------------------------------------------------------- config.json
/** `POST /api/v1/fleets/:slug/config-json` body; the answer is a configJsonSchema document with a new provisioning key. */
export const configJsonRequestSchema = z.strictObject({
  hostname: z
    .string()
    .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'a valid hostname label')
    .optional(),
  developmentMode: z.boolean().optional(),
  persistentLogging: z.boolean().optional(),
  sshKeys: z.array(z.string().min(1).max(16_384)).max(100).optional(),
  wifiSsid: z.string().min(1).max(32).optional(),
  wifiKey: z.string().min(8).max(63).optional(),
  /** ISO-8601 expiry of the provisioning key put in the file; default: never. */
  provisioningKeyExpiry: isoDate.optional(),
  appUpdatePollInterval: z.number().int().min(10_000).optional(),
  dnsServers: z.string().max(1000).optional(),
  deviceType: z.string().min(1).max(100).optional(),
});
export type ConfigJsonRequest = z.infer<typeof configJsonRequestSchema>;
