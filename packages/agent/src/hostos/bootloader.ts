import type { Slot } from './host-os-config.js';

/** What the bootloader's environment says about the next boots. */
export interface BootEnv {
  /** The slot booted by default: the last one committed. */
  committed: Slot;
  /** A slot armed for one trial boot, not yet committed; null when none is. */
  trial: Slot | null;
}

/**
 * The narrow part of a bootloader the updater needs. INVARIANT (every adapter): a trial is one-shot. After
 * `armTrial(s)` the next boot starts `s`; any boot after that which was not preceded by `commit(s)` starts the
 * committed slot again, with no help from the OS. That is what turns a new OS that hangs, panics or never
 * starts the agent into a rollback.
 */
export interface Bootloader {
  readonly type: 'grub' | 'uboot' | 'file';
  read(): Promise<BootEnv>;
  /** The next boot (only) starts `slot`. */
  armTrial(slot: Slot): Promise<void>;
  /** `slot` becomes the default and any trial is cleared. Also how a trial is called off (commit the old slot). */
  commit(slot: Slot): Promise<void>;
}

/**
 * The bootloader's own side, for tests and benches: what it does at power-on, from its environment alone, written
 * to that environment with the same tool it would use. Returns the slot it starts.
 */
export interface BootSimulator {
  boot(): Promise<Slot>;
}
