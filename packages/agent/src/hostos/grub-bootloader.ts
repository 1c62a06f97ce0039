import { access } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import type { BootEnv, BootSimulator, Bootloader } from './bootloader.js';
import type { Slot } from './host-os-config.js';
import { parseEnvLines, runTool } from './run-tool.js';

/**
 * GRUB through its environment block (grubenv, 1 KiB) and `grub-editenv`, the tool Debian's grub-common ships for
 * it. The variables, which `flotilla-ab.grub.cfg` (beside this file; README "Host OS updates") reads at boot:
 *   flotilla_slot   the committed slot, booted by default ('a' when unset)
 *   flotilla_trial  a slot to boot once; grub.cfg empties it (save_env) before starting that slot, which is what
 *                   makes the trial one-shot, the same idea as `grub-reboot`'s next_entry
 */
export class GrubBootloader implements Bootloader {
  readonly type = 'grub';

  constructor(
    readonly grubenv: string,
    private readonly tool = 'grub-editenv',
  ) {}

  async read(): Promise<BootEnv> {
    return grubBootEnv(parseEnvLines(await this.edit('list')));
  }

  async armTrial(slot: Slot): Promise<void> {
    await this.edit('set', `flotilla_trial=${slot}`);
  }

  async commit(slot: Slot): Promise<void> {
    // One grub-editenv call rewrites the block once: the slot and the cleared trial land together.
    await this.edit('set', `flotilla_slot=${slot}`, 'flotilla_trial=');
  }

  /** Makes the environment block when there is none (a new host), without touching one that exists. */
  async ensureCreated(): Promise<void> {
    if (
      await access(this.grubenv).then(
        () => false,
        () => true,
      )
    )
      await runTool(this.tool, [this.grubenv, 'create']);
  }

  private edit(...args: string[]): Promise<string> {
    return runTool(this.tool, [this.grubenv, ...args]);
  }
}

function slotOf(value: string | undefined, fallback: Slot | null): Slot | null {
  if (value === undefined || value === '') return fallback;
  if (value === 'a' || value === 'b') return value;
  throw new FlotillaError('BOOTLOADER_FAILED', `grubenv holds '${value}' where a slot (a or b) belongs`);
}

/** Pure: the grubenv variables → what the next boot does (as flotilla-ab.grub.cfg decides it). */
export function grubBootEnv(env: Map<string, string>): BootEnv {
  return { committed: slotOf(env.get('flotilla_slot'), 'a') as Slot, trial: slotOf(env.get('flotilla_trial'), null) };
}

/**
 * GRUB at power-on, step by step as flotilla-ab.grub.cfg: load_env; a trial slot is emptied and saved (save_env)
 * before it is started; otherwise the committed slot starts.
 */
export class GrubBootSimulator implements BootSimulator {
  constructor(private readonly grub: GrubBootloader) {}

  async boot(): Promise<Slot> {
    const env = await this.grub.read();
    if (env.trial === null) return env.committed;
    await runTool('grub-editenv', [this.grub.grubenv, 'set', 'flotilla_trial=']);
    return env.trial;
  }
}
