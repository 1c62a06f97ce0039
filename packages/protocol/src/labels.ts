/**
 * Labels the agent puts on everything it creates in the engine. INVARIANT: current state is re-derived from these
 * labels alone after any crash, so every container, volume and network the agent owns must carry them.
 */
export const LABELS = {
  /** Present ("1") on every object the agent owns. balenaOS uses io.balena.supervised. */
  supervised: 'io.balena.supervised',
  appId: 'io.balena.app-id',
  appUuid: 'io.balena.app-uuid',
  serviceId: 'io.balena.service-id',
  serviceName: 'io.balena.service-name',
  releaseCommit: 'io.flotilla.release-commit',
  releaseId: 'io.flotilla.release-id',
  imageId: 'io.flotilla.image-id',
  /** Hash of the service's effective config; a changed hash is the only reason to recreate a container. */
  configHash: 'io.flotilla.config-hash',
  updateStrategy: 'io.balena.update.strategy',
  handoverTimeout: 'io.balena.update.handover-timeout',
} as const;

export const UPDATE_STRATEGIES = [
  'download-then-kill',
  'kill-then-download',
  'delete-then-download',
  'hand-over',
] as const;
export type UpdateStrategy = (typeof UPDATE_STRATEGIES)[number];
export const DEFAULT_UPDATE_STRATEGY: UpdateStrategy = 'download-then-kill';
export const DEFAULT_HANDOVER_TIMEOUT_MS = 60_000;

/** Host-access features granted by labels instead of arbitrary bind mounts. */
export const FEATURE_LABELS = [
  'io.balena.features.supervisor-api',
  'io.balena.features.balena-api',
  'io.balena.features.balena-socket',
  'io.balena.features.dbus',
  'io.balena.features.kernel-modules',
  'io.balena.features.firmware',
  'io.balena.features.sysfs',
  'io.balena.features.procfs',
  'io.balena.features.journal-logs',
  'io.balena.features.gpu',
] as const;
