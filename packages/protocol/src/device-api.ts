import { z } from 'zod';
import { composeServiceSchema } from './compose.js';
import { deviceUuidSchema } from './ids.js';
import { targetOsSchema } from './os-releases.js';
import { updateWindowSchema } from './update-window.js';

/**
 * Device ⇄ control plane payloads (see docs/protocol.md). The shapes follow the balena Supervisor so that a
 * real balenaOS device can talk to Flotilla; object schemas are loose where the Supervisor may send fields we do not
 * use, so a newer Supervisor is not rejected for an extra key.
 */

// ---------------------------------------------------------------------------------------------------- registration
export const registerRequestSchema = z.looseObject({
  user: z.union([z.number(), z.string()]).optional(),
  application: z.union([z.number().int().positive(), z.string().regex(/^\d+$/).transform(Number)]),
  uuid: deviceUuidSchema,
  device_type: z.string().min(1).max(100),
  api_key: z.string().min(16).max(200),
  supervisor_version: z.string().max(100).optional(),
  os_version: z.string().max(200).optional(),
  os_variant: z.string().max(100).optional(),
  mac_address: z.string().max(1000).optional(),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const registerResponseSchema = z.object({ id: z.number().int(), uuid: deviceUuidSchema, api_key: z.string() });
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

export const keyExchangeRequestSchema = z.looseObject({ apiKey: z.string().min(16).max(200) });
export type KeyExchangeRequest = z.infer<typeof keyExchangeRequestSchema>;

/** `GET /v7/device?$select=id&$filter=uuid eq '<uuid>'` answer. */
export const findSelfResponseSchema = z.object({ d: z.array(z.object({ id: z.number().int() }).loose()) });
export type FindSelfResponse = z.infer<typeof findSelfResponseSchema>;

// ---------------------------------------------------------------------------------------------------- target state
/** One service's composition in target state: the compose keys of the release, minus build-only ones. */
export const serviceCompositionSchema = composeServiceSchema
  .omit({ build: true, image: true, environment: true, labels: true })
  .loose();
export type ServiceComposition = z.infer<typeof serviceCompositionSchema>;

export const targetServiceSchema = z.looseObject({
  id: z.number().int(),
  image_id: z.number().int(),
  /** `<registry host>/v2/<repo>@sha256:<digest>`: always pinned by digest so the device verifies what it pulls. */
  image: z.string().min(1),
  running: z.boolean().default(true),
  environment: z.record(z.string(), z.string()).default({}),
  labels: z.record(z.string(), z.string()).default({}),
  composition: serviceCompositionSchema.default({}),
});
export type TargetService = z.infer<typeof targetServiceSchema>;

export const targetVolumeSchema = z.looseObject({
  driver: z.string().default('local'),
  driver_opts: z.record(z.string(), z.string()).default({}),
  labels: z.record(z.string(), z.string()).default({}),
});
export type TargetVolume = z.infer<typeof targetVolumeSchema>;

export const targetNetworkSchema = z.looseObject({
  driver: z.string().default('bridge'),
  driver_opts: z.record(z.string(), z.string()).default({}),
  internal: z.boolean().optional(),
  enable_ipv6: z.boolean().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  ipam: z
    .looseObject({
      driver: z.string().default('default'),
      config: z
        .array(
          z.looseObject({
            subnet: z.string().optional(),
            gateway: z.string().optional(),
            ip_range: z.string().optional(),
          }),
        )
        .default([]),
      options: z.record(z.string(), z.string()).default({}),
    })
    .default({ driver: 'default', config: [], options: {} }),
});
export type TargetNetwork = z.infer<typeof targetNetworkSchema>;

export const targetReleaseSchema = z.looseObject({
  id: z.number().int(),
  services: z.record(z.string(), targetServiceSchema).default({}),
  volumes: z.record(z.string(), targetVolumeSchema).default({}),
  networks: z.record(z.string(), targetNetworkSchema).default({}),
});
export type TargetRelease = z.infer<typeof targetReleaseSchema>;

export const targetAppSchema = z.looseObject({
  id: z.number().int(),
  name: z.string(),
  class: z.enum(['fleet', 'app', 'block']).default('fleet'),
  is_host: z.boolean().default(false),
  /** Zero releases = run nothing for this app (it is in target but has no release yet). At most one. */
  releases: z.record(z.string(), targetReleaseSchema).default({}),
});
export type TargetApp = z.infer<typeof targetAppSchema>;

export const targetDeviceSchema = z.looseObject({
  name: z.string(),
  config: z.record(z.string(), z.string()).default({}),
  apps: z.record(z.string(), targetAppSchema).default({}),
  /**
   * Flotilla only (the balena Supervisor ignores it): the device's maintenance window, its own or its fleet's.
   * Absent or null: updates apply at once. Present: images are downloaded at once, containers change only inside it.
   */
  update_window: updateWindowSchema.nullable().optional(),
  /**
   * Flotilla only: the host OS the device must run (A/B hosts, config.json `hostOS`); absent when none was set. The
   * balena Supervisor ignores it.
   */
  os: targetOsSchema.optional(),
});
export type TargetDevice = z.infer<typeof targetDeviceSchema>;

/** `GET /device/v3/:uuid/state` → `{ [uuid]: TargetDevice }`. */
export const targetStateSchema = z.record(deviceUuidSchema, targetDeviceSchema);
export type TargetState = z.infer<typeof targetStateSchema>;

// --------------------------------------------------------------------------------------------------- current state
export const updateStatusSchema = z.enum([
  'rejected',
  'downloading',
  'downloaded',
  'applying changes',
  'aborted',
  'done',
]);
export type UpdateStatus = z.infer<typeof updateStatusSchema>;

export const serviceStatusSchema = z.string().max(100); // Running, Installing, Downloading, Exited, Stopping, ...

export const currentServiceSchema = z.looseObject({
  image: z.string().max(1000),
  status: serviceStatusSchema,
  download_progress: z.number().min(0).max(100).nullable().optional(),
  /** The container's healthcheck state (`starting`, `healthy`, `unhealthy`) where it has one; rollouts wait for `healthy`. */
  health: z.string().max(50).optional(),
});
export type CurrentService = z.infer<typeof currentServiceSchema>;

export const currentReleaseSchema = z.looseObject({
  update_status: updateStatusSchema.optional(),
  services: z.record(z.string(), currentServiceSchema).default({}),
});

export const currentAppSchema = z.looseObject({
  release_uuid: z.string().max(64).nullable().optional(),
  releases: z.record(z.string(), currentReleaseSchema).default({}),
});
export type CurrentRelease = z.infer<typeof currentReleaseSchema>;
export type CurrentApp = z.infer<typeof currentAppSchema>;

/**
 * Flotilla agents only (the balena Supervisor never sends it): the device went back by itself from a release that
 * failed while it was watched after applying it, and refuses that release until told otherwise. `null` once it no
 * longer refuses it (a new target, or a forced update).
 */
export const deviceRollbackSchema = z.object({
  /** Commit of the release the device rolled back from (the one it refuses). */
  from_commit: z.string().max(64),
  /** Commit of the release it went back to. */
  to_commit: z.string().max(64),
  /** Why, in words: crash loop, non-zero exits, unhealthy by its healthcheck. */
  reason: z.string().max(1000),
  /** The service that failed, when one did. */
  service: z.string().max(63).nullable(),
  /** The failing service's last output lines, oldest first. */
  logs: z.array(z.string().max(2000)).max(50),
  /** When the device decided to roll back (ISO 8601). */
  at: z.string().max(40),
});
export type DeviceRollback = z.infer<typeof deviceRollbackSchema>;

/** The phases of a host OS update on an A/B host (agent/src/hostos/update-machine.ts). */
export const HOST_OS_UPDATE_PHASES = [
  'idle',
  'writing',
  'verifying',
  'armed',
  'trial',
  'rolling-back',
  'committed',
  'rolled-back',
  'failed',
] as const;

/** Flotilla agents on an A/B host only: where the host OS update stands. `null` when the host has none. */
export const deviceOsUpdateSchema = z.object({
  phase: z.enum(HOST_OS_UPDATE_PHASES),
  /** The OS version being installed (or last installed, rolled back from, given up). */
  version: z.string().max(200).nullable(),
  /** Percent of the image written to the inactive slot while `writing`; null otherwise. */
  progress: z.number().int().min(0).max(100).nullable(),
  /** Why it rolled back or failed: a stable error code and words; null otherwise. */
  error_code: z.string().max(100).nullable(),
  error: z.string().max(2000).nullable(),
});
export type DeviceOsUpdate = z.infer<typeof deviceOsUpdateSchema>;

const nullableInt = z.number().int().min(0).nullable().optional();
/** One device's report. Every field is optional: a report carries only what changed since the last one. */
export const deviceReportSchema = z.looseObject({
  api_port: z.number().int().min(0).max(65535).nullable().optional(),
  api_secret: z.string().max(200).nullable().optional(),
  os_version: z.string().max(200).nullable().optional(),
  os_variant: z.string().max(100).nullable().optional(),
  supervisor_version: z.string().max(100).nullable().optional(),
  provisioning_progress: z.number().nullable().optional(),
  provisioning_state: z.string().max(200).nullable().optional(),
  ip_address: z.string().max(2000).nullable().optional(),
  mac_address: z.string().max(2000).nullable().optional(),
  name: z.string().max(200).optional(),
  status: z.string().max(100).nullable().optional(),
  update_pending: z.boolean().optional(),
  update_downloaded: z.boolean().optional(),
  update_failed: z.boolean().optional(),
  rollback: deviceRollbackSchema.nullable().optional(),
  os_update: deviceOsUpdateSchema.nullable().optional(),
  /**
   * Flotilla agents only: while an update is downloaded and waits for the maintenance window, when the window opens
   * (ISO 8601); null when the device waits for no window.
   */
  update_window_opens_at: z.string().max(40).nullable().optional(),
  is_on__commit: z.string().max(64).nullable().optional(),
  logs_channel: z.string().nullable().optional(),
  cpu_usage: nullableInt,
  cpu_temp: z.number().nullable().optional(),
  cpu_id: z.string().max(200).nullable().optional(),
  memory_usage: nullableInt,
  memory_total: nullableInt,
  storage_block_device: z.string().max(200).nullable().optional(),
  storage_usage: nullableInt,
  storage_total: nullableInt,
  is_undervolted: z.boolean().nullable().optional(),
  local_mode: z.boolean().optional(),
  apps: z.record(z.string(), currentAppSchema).optional(),
  config: z.record(z.string(), z.string()).optional(),
});
export type DeviceReport = z.infer<typeof deviceReportSchema>;

/** `PATCH /device/v3/state` body: `{ [uuid]: DeviceReport }`. */
export const stateReportSchema = z.record(deviceUuidSchema, deviceReportSchema);
export type StateReport = z.infer<typeof stateReportSchema>;

/** `PATCH /device/v3/tags` body: `{ [uuid]: { [key]: value } }`. */
export const tagsReportSchema = z.record(deviceUuidSchema, z.record(z.string().min(1).max(100), z.string().max(1000)));
export type TagsReport = z.infer<typeof tagsReportSchema>;

// ------------------------------------------------------------------------------------------------------- os-config
/**
 * `GET /os/v1/config`: what balenaOS's os-config writes into its host services' files (`services.<service>.<file>`)
 * and the config.json keys it updates (`config.overrides`). os-config fails its run when a service its image
 * manages (openvpn, ssh) is missing, so both are always present; older os-configs check `schema_version`.
 */
export const osConfigSchema = z.object({
  services: z.object({
    openvpn: z.object({ config: z.string(), ca: z.string() }),
    ssh: z.object({ authorized_keys: z.string() }),
  }),
  config: z.object({ overrides: z.record(z.string(), z.unknown()) }),
  schema_version: z.literal('1.0.0'),
});
export type OsConfig = z.infer<typeof osConfigSchema>;

// ------------------------------------------------------------------------------------------------------------ logs
/** One NDJSON line of `POST /device/v2/:uuid/log-stream`. */
export const deviceLogLineSchema = z.looseObject({
  message: z.string().max(64 * 1024),
  timestamp: z.number().int().nonnegative(),
  isSystem: z.boolean().optional(),
  isStdErr: z.boolean().optional(),
  serviceId: z.number().int().optional(),
  serviceName: z.string().max(63).optional(),
});
export type DeviceLogLine = z.infer<typeof deviceLogLineSchema>;

/** How long a device waits between polls when nothing says otherwise, and the jitter added. */
export const DEFAULT_POLL_INTERVAL_MS = 900_000;
export const POLL_JITTER_MS = 60_000;
/** Minimum interval between two current-state reports from one device. */
export const REPORT_MIN_INTERVAL_MS = 10_000;
