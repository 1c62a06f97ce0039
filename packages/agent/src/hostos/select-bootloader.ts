import { readFile } from 'node:fs/promises';
import type { Bootloader, BootSimulator } from './bootloader.js';
import { FileBootloader, FileBootSimulator } from './file-bootloader.js';
import { GrubBootloader, GrubBootSimulator } from './grub-bootloader.js';
import type { HostOsConfig, Slot } from './host-os-config.js';
import { UBootBootloader, UBootBootSimulator } from './uboot-bootloader.js';

export function bootloaderFor(config: HostOsConfig): Bootloader {
  const b = config.bootloader;
  if (b.type === 'grub') return new GrubBootloader(b.grubenv);
  if (b.type === 'uboot') return new UBootBootloader(b.fwEnvConfig);
  return new FileBootloader(b.path);
}

/** Tests and benches: the bootloader's power-on decision for the adapter `bootloaderFor` made. */
export function bootSimulatorFor(bootloader: Bootloader): BootSimulator {
  if (bootloader instanceof GrubBootloader) return new GrubBootSimulator(bootloader);
  if (bootloader instanceof UBootBootloader) return new UBootBootSimulator(bootloader);
  return new FileBootSimulator(bootloader as FileBootloader);
}

/** Pure: the slot a kernel command line names (`<key>=a|b`, set by the bootloader), or undefined. */
export function slotFromCmdline(cmdline: string, key: string): Slot | undefined {
  for (const word of cmdline.trim().split(/\s+/)) {
    if (word === `${key}=a`) return 'a';
    if (word === `${key}=b`) return 'b';
  }
  return undefined;
}

/** The slot this boot started, as the bootloader told the kernel; undefined when it did not say. */
export async function bootedSlot(config: HostOsConfig, cmdlineFile = '/proc/cmdline'): Promise<Slot | undefined> {
  return slotFromCmdline(await readFile(cmdlineFile, 'utf8'), config.cmdlineKey);
}
