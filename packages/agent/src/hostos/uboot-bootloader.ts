import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { BootEnv, BootSimulator, Bootloader } from './bootloader.js';
import { otherSlot, type Slot } from './host-os-config.js';
import { parseEnvLines, runTool } from './run-tool.js';

/**
 * U-Boot through its environment and `fw_printenv`/`fw_setenv` (Debian's libubootenv-tool), with U-Boot's own boot
 * counting (CONFIG_BOOTCOUNT_LIMIT with the count kept in the environment). The variables (README "Host OS
 * updates" has the bootcmd/altbootcmd a device needs):
 *   flotilla_slot      the slot bootcmd starts
 *   upgrade_available  1 while a trial is armed: only then does U-Boot count boots in `bootcount`
 *   bootcount          boots since arming; above `bootlimit` U-Boot runs altbootcmd instead of bootcmd
 *   bootlimit          1 here: one trial boot, then altbootcmd switches flotilla_slot back and clears the trial
 * Each change is one `fw_setenv -s` script, so it lands in one environment write (with a redundant environment,
 * configured in fw_env.config, a power cut keeps the previous copy).
 */
export class UBootBootloader implements Bootloader {
  readonly type = 'uboot';

  constructor(readonly fwEnvConfig: string) {}

  async read(): Promise<BootEnv> {
    return ubootBootEnv(parseEnvLines(await runTool('fw_printenv', ['-c', this.fwEnvConfig])));
  }

  armTrial(slot: Slot): Promise<void> {
    return this.set({ flotilla_slot: slot, upgrade_available: '1', bootcount: '0', bootlimit: '1' });
  }

  commit(slot: Slot): Promise<void> {
    return this.set({ flotilla_slot: slot, upgrade_available: '0', bootcount: '0' });
  }

  /** One fw_setenv script: libubootenv reads `name=value` lines and writes the environment once. */
  async set(values: Record<string, string>): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'flotilla-fwenv-'));
    try {
      const script = join(dir, 'script');
      await writeFile(
        script,
        `${Object.entries(values)
          .map(([k, v]) => `${k}=${v}`)
          .join('\n')}\n`,
      );
      await runTool('fw_setenv', ['-c', this.fwEnvConfig, '-s', script]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

function slot(value: string | undefined): Slot {
  if (value === undefined || value === 'a' || value === 'b') return value ?? 'a';
  throw new FlotillaError('BOOTLOADER_FAILED', `U-Boot flotilla_slot holds '${value}' where a slot (a or b) belongs`);
}

/** Pure: the U-Boot variables → what the next boots do. While armed, bootcmd starts the trial slot. */
export function ubootBootEnv(env: Map<string, string>): BootEnv {
  const current = slot(env.get('flotilla_slot'));
  return env.get('upgrade_available') === '1'
    ? { committed: otherSlot(current), trial: current }
    : { committed: current, trial: null };
}

/**
 * U-Boot at power-on: with upgrade_available=1 it counts the boot (saveenv); past bootlimit it runs altbootcmd,
 * which here switches flotilla_slot to the other slot and clears the trial; then bootcmd starts flotilla_slot.
 */
export class UBootBootSimulator implements BootSimulator {
  constructor(private readonly uboot: UBootBootloader) {}

  async boot(): Promise<Slot> {
    const env = parseEnvLines(await runTool('fw_printenv', ['-c', this.uboot.fwEnvConfig]));
    const current = slot(env.get('flotilla_slot'));
    if (env.get('upgrade_available') !== '1') return current;
    const count = Number(env.get('bootcount') ?? '0') + 1;
    if (count <= Number(env.get('bootlimit') ?? '1')) {
      await this.uboot.set({ bootcount: String(count) });
      return current;
    }
    await this.uboot.set({ flotilla_slot: otherSlot(current), upgrade_available: '0', bootcount: '0' });
    return otherSlot(current);
  }
}
