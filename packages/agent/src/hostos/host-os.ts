import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { HealthCheck } from './health.js';
import { parseHostOsConfig } from './host-os-config.js';
import { HostOsUpdater } from './host-os-updater.js';
import { openImage, type OpenImage } from './image-source.js';
import { bootedSlot, bootloaderFor } from './select-bootloader.js';
import type { UpdateState } from './update-machine.js';

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
    openImage: deps.openImage ?? openImage,
    healthChecks: deps.healthChecks,
    reboot: deps.reboot,
    log: deps.log,
    ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
    ...(deps.onChange ? { onChange: deps.onChange } : {}),
  });
}
