import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import pino from 'pino';
import type { Bootloader } from '../hostos/bootloader.js';
import type { HostOsConfig, Slot } from '../hostos/host-os-config.js';
import { HostOsUpdater } from '../hostos/host-os-updater.js';
import { openImage, type OpenImage } from '../hostos/image-source.js';
import { bootloaderFor, bootSimulatorFor } from '../hostos/select-bootloader.js';
import type { OsTarget } from '../hostos/update-machine.js';

export function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || error.message}`)) : resolve(stdout),
    ),
  );
}

/**
 * Why loop devices cannot be used here, or undefined when they can. Under CI=true a missing capability is a failure
 * (scripts/setup.sh installs the tools; CI runs as root), elsewhere the tests skip with this reason.
 */
export async function loopUnavailable(): Promise<string | undefined> {
  const why = await run('losetup', ['-f']).then(
    () => (process.getuid?.() === 0 ? undefined : 'loop devices need root'),
    (error: Error) => `losetup -f failed: ${error.message}`,
  );
  if (why && process.env.CI === 'true') throw new Error(`${why} (CI=true: the host OS tests must run)`);
  return why;
}

/** Two sparse files attached as loop devices, detached when the test ends whatever happened. */
export async function loopSlots(t: TestContext, dir: string, bytes: number): Promise<Record<Slot, string>> {
  const slots = {} as Record<Slot, string>;
  t.after(async () => {
    for (const device of Object.values(slots)) await run('losetup', ['-d', device]).catch(() => undefined);
  });
  for (const slot of ['a', 'b'] as const) {
    const file = join(dir, `slot-${slot}.img`);
    await writeFile(file, '');
    await truncate(file, bytes);
    slots[slot] = (await run('losetup', ['-f', '--show', file])).trim();
  }
  return slots;
}

/** A raw ext4 root filesystem image holding /etc/os-release with `version` (mkfs.ext4 -d: no mount needed). */
export async function osImage(dir: string, version: string, mib: number): Promise<{ path: string; target: OsTarget }> {
  const root = join(dir, `root-${version}`);
  await mkdir(join(root, 'etc'), { recursive: true });
  await writeFile(join(root, 'etc', 'os-release'), `NAME="Flotilla OS"\nVERSION="${version}"\n`);
  const path = join(dir, `os-${version}.img`);
  await run('mkfs.ext4', ['-q', '-F', '-L', `os-${version}`, '-d', root, path, `${mib}M`]);
  const bytes = await readFile(path);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { path, target: { version, url: `file://${path}`, sha256, size: bytes.length } };
}

/** The VERSION in a slot's /etc/os-release, read from the filesystem on the device (debugfs). */
export async function slotVersion(device: string): Promise<string | undefined> {
  const text = await run('debugfs', ['-R', 'cat /etc/os-release', device]);
  return /VERSION="([^"]+)"/.exec(text)?.[1];
}

export async function digestOf(device: string, size: number): Promise<string> {
  const { readBackDigest } = await import('../hostos/slot-writer.js');
  return readBackDigest(device, size);
}

/** A fresh bootloader environment that boots slot a: grubenv made by grub-editenv, a U-Boot env by mkenvimage. */
export async function freshBootloader(
  type: HostOsConfig['bootloader']['type'],
  dir: string,
): Promise<HostOsConfig['bootloader']> {
  if (type === 'grub') {
    const grubenv = join(dir, 'grubenv');
    await run('grub-editenv', [grubenv, 'create']);
    await run('grub-editenv', [grubenv, 'set', 'flotilla_slot=a']);
    return { type, grubenv };
  }
  if (type === 'uboot') {
    const env = join(dir, 'uboot.env');
    const defaults = join(dir, 'uboot-defaults.txt');
    await writeFile(defaults, 'flotilla_slot=a\nbootlimit=1\nbootcount=0\nupgrade_available=0\n');
    await run('mkenvimage', ['-s', '0x4000', '-o', env, defaults]);
    const fwEnvConfig = join(dir, 'fw_env.config');
    await writeFile(fwEnvConfig, `${env} 0x0 0x4000\n`);
    return { type, fwEnvConfig };
  }
  return { type, path: join(dir, 'boot.json') };
}

export interface SimulatedDevice {
  config: HostOsConfig;
  bootloader: Bootloader;
  stateFile: string;
  /** Reboots the updaters asked for. */
  reboots: number;
  /** Power-on: the slot the bootloader chooses from its environment (and what it writes there doing so). */
  powerOn(): Promise<Slot>;
  /** The agent starting on `booted`: a new updater over the same state file and bootloader. */
  agent(booted: Slot, options?: { healthy?: boolean; openImage?: OpenImage }): Promise<HostOsUpdater>;
}

export function simulatedDevice(config: HostOsConfig, stateFile: string): SimulatedDevice {
  const bootloader = bootloaderFor(config);
  const sim = bootSimulatorFor(bootloader);
  const device: SimulatedDevice = {
    config,
    bootloader,
    stateFile,
    reboots: 0,
    powerOn: () => sim.boot(),
    agent: (booted, options = {}) =>
      HostOsUpdater.open({
        config,
        bootloader,
        booted,
        stateFile,
        checkpointFile: join(dirname(stateFile), 'host-os-write.json'),
        openImage: options.openImage ?? openImage,
        healthChecks: [{ name: 'control plane', check: async () => options.healthy ?? true }],
        healthTimeoutMs: 300,
        healthIntervalMs: 50,
        retryDelayMs: 0,
        reboot: async () => {
          device.reboots++;
        },
        log: pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' }),
      }),
  };
  return device;
}
