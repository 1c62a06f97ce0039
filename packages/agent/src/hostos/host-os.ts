import { join } from 'node:path';
import { FlotillaError, type DeviceOsUpdate } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { HealthCheck } from './health.js';
import { parseHostOsConfig } from './host-os-config.js';
import { HostOsUpdater } from './host-os-updater.js';
import { openImage, type OpenImage } from './image-source.js';
import type { OsDelta } from './os-delta.js';
import { bootedSlot, bootloaderFor } from './select-bootloader.js';
import { MAX_WRITE_ATTEMPTS, type UpdatePhase, type UpdateState } from './update-machine.js';

export interface HostOsDeps {
  /** config.json's raw `hostOS` value. */
  hostOS: unknown;
  dataDir: string;
  reboot: () => Promise<void>;
  healthChecks: HealthCheck[];
  log: Logger;
  onProgress?: (percent: number) => void;
  onChange?: (state: UpdateState) => void;
  openImage?: OpenImage;
  /** Managed devices: OS images by delta (os-delta.ts). */
  osDelta?: OsDelta | undefined;
  /** The booted OS's version (os-release VERSION_ID), the delta's source when the updater did not write it. */
  runningVersion?: string | undefined;
  cmdlineFile?: string;
}

/**
 * The entry point for the agent's composition root: the updater for this host, or undefined when config.json has
 * no `hostOS` (not an A/B host). Throws HOST_OS_CONFIG_INVALID for a wrong `hostOS` and BOOTLOADER_FAILED when the
 * kernel was not told its slot; the caller logs those and runs on without OS updates. Call `resume()` on the result.
 */
export async function openHostOs(deps: HostOsDeps): Promise<HostOsUpdater | undefined> {
  const config = parseHostOsConfig(deps.hostOS);
  if (!config) return undefined;
  const booted = await bootedSlot(config, deps.cmdlineFile);
  if (!booted)
    throw new FlotillaError(
      'BOOTLOADER_FAILED',
      `the kernel command line names no ${config.cmdlineKey}=a|b: the bootloader is not set up for A/B updates`,
    );
  return HostOsUpdater.open({
    config,
    bootloader: bootloaderFor(config),
    booted,
    stateFile: join(deps.dataDir, 'host-os-update.json'),
    checkpointFile: join(deps.dataDir, 'host-os-write.json'),
    openImage: deps.openImage ?? openImage,
    osDelta: deps.osDelta,
    runningVersion: deps.runningVersion,
    healthChecks: deps.healthChecks,
    reboot: deps.reboot,
    log: deps.log,
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
    ...(deps.onChange ? { onChange: deps.onChange } : {}),
  });
}

/**
 * The agent's start: opens the updater when config.json names an A/B host and carries its update on in the
 * background (a trial boot commits or goes back). A wrong `hostOS` or a bootloader not set up is logged and the
 * agent runs on without OS updates: its apps matter more than its OS updates.
 */
export async function startHostOs(
  deps: HostOsDeps & {
    system: (message: string) => void;
    /** Where the update stands, for the device report: at start, on every change, and as the write progresses. */
    report: (update: DeviceOsUpdate) => void;
  },
): Promise<HostOsUpdater | undefined> {
  let last: DeviceOsUpdate | undefined;
  const report = (update: DeviceOsUpdate): void => {
    last = update;
    deps.report(update);
  };
  const onProgress = (percent: number): void => {
    deps.onProgress?.(percent);
    if (last?.phase === 'writing' && last.progress !== percent) report({ ...last, progress: percent });
  };
  let attempt = 0;
  const onChange = (state: UpdateState): void => {
    deps.onChange?.(state);
    report(osUpdateReport(state));
    const version = state.target?.version;
    const failedBefore = state.phase === 'writing' && state.attempts > attempt && state.attempts > 1;
    attempt = state.attempts;
    if (failedBefore)
      deps.system(
        `Host OS update to ${version}: write ${state.attempts - 1} of ${MAX_WRITE_ATTEMPTS} failed` +
          ` (${state.reason?.message ?? 'no reason given'}); writing again`,
      );
    else if (state.phase === 'committed') deps.system(`Host OS ${version} committed`);
    else if (state.phase === 'rolled-back' || state.phase === 'failed')
      deps.system(`Host OS update to ${version} ${state.phase}: ${state.reason?.message ?? 'no reason given'}`);
  };
  let updater: HostOsUpdater | undefined;
  try {
    updater = await openHostOs({ ...deps, onChange, onProgress });
  } catch (error) {
    deps.log.error({ err: (error as Error).message }, 'host OS updates are off');
    return undefined;
  }
  if (updater) {
    attempt = updater.state().attempts; // a write that failed before this start was told then
    report(osUpdateReport(updater.state()));
  }
  updater
    ?.resume()
    .catch((error: unknown) => deps.log.error({ err: (error as Error).message }, 'host OS update could not carry on'));
  return updater;
}

/** Phases whose report says why (a failed write that is being written again keeps its reason, not reported). */
const EXPLAINED: ReadonlySet<UpdatePhase> = new Set<UpdatePhase>(['rolling-back', 'rolled-back', 'failed']);

/** Pure: the device report's view of an update state (the write's progress starts at 0 and moves with it). */
export function osUpdateReport(state: UpdateState): DeviceOsUpdate {
  const reason = EXPLAINED.has(state.phase) ? state.reason : null;
  return {
    phase: state.phase,
    version: state.target?.version ?? null,
    progress: state.phase === 'writing' ? 0 : null,
    error_code: reason?.code ?? null,
    error: reason?.message ?? null,
  };
}
