/**
 * Every error Flotilla reports carries one of these stable string codes. Servers map a code to its HTTP status
 * through this one table; clients print `message (CODE)` and never a stack trace.
 *
 * INVARIANT: codes are never renamed or reused for another meaning once released; add new ones instead.
 */
export const ERROR_CODES = {
  // Input
  VALIDATION_FAILED: { status: 400, description: 'The request body, query or parameters did not match the schema.' },
  INVALID_JSON: { status: 400, description: 'The request body is not valid JSON.' },
  INVALID_ODATA_QUERY: {
    status: 400,
    description:
      'An OData (/v7/) query is malformed, too large or too deep, or names a resource, field or option not served.',
  },
  INVALID_COMPOSE: { status: 400, description: 'The compose definition is invalid or uses an unsupported feature.' },
  INVALID_CONFIG_JSON: { status: 400, description: 'A device config.json is missing fields or has wrong types.' },
  INVALID_TARBALL: { status: 400, description: 'An uploaded archive is corrupt or unsafe.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The request content type is not accepted here.' },
  UPDATE_WINDOW_INVALID: {
    status: 400,
    description: 'The maintenance window has an invalid cron expression or time zone, or never opens.',
  },
  PAYLOAD_TOO_LARGE: { status: 413, description: 'The request body is larger than this endpoint accepts.' },
  // Identity
  UNAUTHENTICATED: { status: 401, description: 'No valid credentials were presented.' },
  INVALID_CREDENTIALS: { status: 401, description: 'The username or password is wrong.' },
  FORBIDDEN: { status: 403, description: 'The credentials are valid but do not allow this action.' },
  PROVISIONING_KEY_EXPIRED: { status: 401, description: 'The provisioning key has expired or was revoked.' },
  // Resources
  NOT_FOUND: { status: 404, description: 'The route does not exist.' },
  ORGANIZATION_NOT_FOUND: { status: 404, description: 'No such organization, or it is not visible to you.' },
  FLEET_NOT_FOUND: { status: 404, description: 'No such fleet, or it is not visible to you.' },
  DEVICE_NOT_FOUND: { status: 404, description: 'No such device, or it is not visible to you.' },
  RELEASE_NOT_FOUND: { status: 404, description: 'No such release in this fleet.' },
  USER_NOT_FOUND: { status: 404, description: 'No such user.' },
  API_KEY_NOT_FOUND: { status: 404, description: 'No such API key.' },
  INVITATION_NOT_FOUND: { status: 404, description: 'No such pending invitation for you.' },
  VARIABLE_NOT_FOUND: { status: 404, description: 'No such environment, config or tag variable.' },
  SERVICE_NOT_FOUND: { status: 404, description: 'No such service in the release.' },
  IMAGE_NOT_FOUND: { status: 404, description: "No such image in a release of the device's fleet." },
  DELTA_NOT_FOUND: {
    status: 404,
    description: 'No delta with this digest for these images (recomputed or collected); ask for the delta again.',
  },
  ROLLOUT_NOT_FOUND: { status: 404, description: 'The fleet has no rollout.' },
  ROLLOUT_POLICY_NOT_FOUND: { status: 404, description: 'The fleet has no rollout policy of that name.' },
  // Conflicts and state
  CONFLICT: { status: 409, description: 'The request conflicts with the current state of the resource.' },
  DEVICE_ALREADY_REGISTERED: { status: 409, description: 'A device with this UUID is already registered.' },
  SLUG_TAKEN: { status: 409, description: 'That slug or name is already in use.' },
  RELEASE_IMMUTABLE: { status: 409, description: 'A finished release cannot be changed.' },
  LAST_ADMIN: {
    status: 409,
    description: 'An organization keeps at least one admin: its last admin cannot be removed, demoted or step down.',
  },
  ROLLOUT_STATE: {
    status: 409,
    description: 'The rollout is not in a state that allows this (resume a running one, pause a finished one …).',
  },
  AMBIGUOUS_REFERENCE: { status: 409, description: 'A short identifier matches more than one resource.' },
  UPDATE_LOCKED: { status: 423, description: 'An update lock held by a service blocks this action.' },
  DEVICE_OFFLINE: { status: 409, description: 'The device is not connected, so the action cannot be delivered now.' },
  LOCAL_MODE_DISABLED: { status: 403, description: 'Local mode is only available on development devices.' },
  RATE_LIMITED: { status: 429, description: 'Too many requests; retry later.' },
  REQUEST_TIMEOUT: {
    status: 408,
    description: 'The request (headers or body) was not received in time; the connection is closed.',
  },
  // Infrastructure
  INTERNAL: { status: 500, description: 'An unexpected error; the details are in the server log.' },
  UNAVAILABLE: { status: 503, description: 'A dependency (database, engine, control plane) is unreachable.' },
  ENGINE_ERROR: { status: 502, description: 'The container engine refused or failed an operation.' },
  NETWORK_ERROR: { status: 502, description: 'The other side could not be reached.' },
  UNEXPECTED_RESPONSE: {
    status: 502,
    description: 'The other side answered with a body that does not match the protocol (a version mismatch?).',
  },
  STORAGE_FULL: {
    status: 507,
    description: 'The server has no space left to store this; nothing was half-written. Retry once space is freed.',
  },
  STORAGE_LOW: {
    status: 503,
    description:
      "Health check: free space on the server's data folder is below its threshold, or a write failed for lack of space.",
  },
  DELTA_UNAVAILABLE: {
    status: 409,
    description: 'No delta can be made between these images (too large, failed, or nothing in common); pull instead.',
  },
  // Client side (CLI, agent): reported with the same shape, mapped to a process exit instead of a response
  NOT_LOGGED_IN: { status: 401, description: 'The CLI has no stored credentials; run `flotilla login`.' },
  BUILD_FAILED: { status: 400, description: 'Building a service image failed.' },
  PUSH_FAILED: { status: 502, description: 'Pushing an image to the registry failed.' },
  PLATFORM_MISMATCH: {
    status: 400,
    description: "An image is built for a CPU architecture the fleet's devices cannot run.",
  },
  DELTA_INVALID: {
    status: 502,
    description:
      'A delta did not rebuild the image byte for byte (digest mismatch); it was discarded and the image pulled.',
  },
  IMAGE_INVALID: {
    status: 502,
    description:
      'A downloaded part of an image (manifest, config or layer) does not match its digest; it was discarded.',
  },
  INSUFFICIENT_DISK: {
    status: 507,
    description: 'Not enough free disk on the device for this update; the running release is kept.',
  },
  HOST_OS_CONFIG_INVALID: {
    status: 400,
    description: "config.json's hostOS (A/B slots, bootloader) is missing fields or wrong; host OS updates are off.",
  },
  OS_IMAGE_INVALID: {
    status: 502,
    description:
      'A host OS image did not match its digest (as received or read back from the slot); it was not booted.',
  },
  OS_IMAGE_TOO_LARGE: { status: 507, description: 'The host OS image is larger than the inactive slot.' },
  BOOTLOADER_FAILED: {
    status: 500,
    description: "The bootloader's environment could not be read or written (grub-editenv, fw_setenv, the file).",
  },
  OS_UPDATE_IN_PROGRESS: {
    status: 409,
    description: 'Another host OS update is under way on the device; it finishes (commits or rolls back) first.',
  },
  OS_TRIAL_BOOT_FAILED: {
    status: 502,
    description: 'The new host OS did not come up to commit itself; the bootloader returned to the old slot.',
  },
  OS_TRIAL_UNHEALTHY: {
    status: 502,
    description:
      'On its trial boot the new host OS failed its health checks in time; the device went back to the old OS.',
  },
  OS_UPDATE_RETRIES_EXHAUSTED: {
    status: 502,
    description:
      'Writing the host OS image was cut short too many times in a row (power cuts, crashes); it was given up.',
  },
  DISK_IMAGE_INVALID: {
    status: 400,
    description:
      'The file is not a partitioned disk image (MBR or GPT), or its partition table or FAT filesystem is inconsistent.',
  },
  BOOT_PARTITION_NOT_FOUND: { status: 400, description: 'The disk image has no FAT boot partition.' },
  BOOT_PARTITION_FULL: {
    status: 507,
    description: 'The boot partition has no room for the files; the image was left unchanged.',
  },
  DATA_PARTITION_NOT_FOUND: {
    status: 400,
    description:
      'The disk image has no ext4 data partition labelled resin-data, flotilla-data or data (by filesystem label or GPT name).',
  },
  DATA_PARTITION_FULL: {
    status: 507,
    description: "The data partition has no room for the release's images; the image was left unchanged.",
  },
  PRELOAD_INVALID: {
    status: 400,
    description:
      'A preload on the device (manifest.json in the preload folder) is malformed, or an image file does not match its digest.',
  },
  DISK_IMAGE_IN_USE: {
    status: 409,
    description: 'The disk image is attached to a loop device (or otherwise in use); detach it first.',
  },
  OS_RELEASE_NOT_FOUND: {
    status: 404,
    description: "No such host OS release for this device type in the device's (or your) organization.",
  },
  OS_RELEASE_EXISTS: { status: 409, description: 'This device type already has an OS release of this version.' },
  OS_RELEASE_IN_USE: {
    status: 409,
    description:
      "Devices, or a fleet's OS rollout, still target this OS release; clear their OS target (or abort the rollout) first.",
  },
  OS_RELEASE_INVALID: {
    status: 400,
    description: 'The pushed OS release image is not in the registry, or is not one slot image layer and its config.',
  },
  DISK_IMAGE_BUSY: {
    status: 409,
    description:
      'Another `os configure`/`os preload` run is writing the disk image (it holds the lock file beside it); wait for it.',
  },
  UNKNOWN_DEVICE_TYPE: {
    status: 400,
    description: 'The device type has no known CPU architecture; name the platform.',
  },
} as const satisfies Record<string, { status: number; description: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_CODES[code].status;
}

/** The one error type every Flotilla package throws for expected failures. */
export class FlotillaError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options?: { details?: unknown; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FlotillaError';
    this.code = code;
    this.details = options?.details;
  }

  get status(): number {
    return statusOf(this.code);
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { error: { code: this.code, message: this.message } }
      : { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** Wire shape of every error response from the user API and device API. */
/**
 * On the paths balena's clients call (`/v6/`, `/v7/`, `/actor/`, `/config`, `/os/`) an error is answered in plain
 * text, `<message> (<CODE>)`, as those clients print a body; this header carries the same stable code.
 */
export const ERROR_CODE_HEADER = 'x-flotilla-error-code';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

export function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const error = (value as { error?: unknown }).error;
  return (
    typeof error === 'object' &&
    error !== null &&
    isErrorCode((error as { code?: unknown }).code) &&
    typeof (error as { message?: unknown }).message === 'string'
  );
}
