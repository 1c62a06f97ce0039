import { readFile } from 'node:fs/promises';
import { FlotillaError } from '@flotilla/protocol';
import { writeFileAtomic } from '../config/atomic-write.js';
import type { BootEnv, BootSimulator, Bootloader } from './bootloader.js';
import type { Slot } from './host-os-config.js';

/**
 * A bootloader environment in a JSON file, `{"committed":"a","trial":null}`, replaced atomically on each change:
 * for tests, benches and development hosts whose boot script reads it. Same one-shot rule as GRUB's.
 */
export class FileBootloader implements Bootloader {
  readonly type = 'file';

  constructor(readonly path: string) {}

  async read(): Promise<BootEnv> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { committed: 'a', trial: null };
      throw new FlotillaError('BOOTLOADER_FAILED', `cannot read ${this.path}: ${(error as Error).message}`);
    }
    const env = JSON.parse(text) as Partial<BootEnv>;
    const ok = (s: unknown): s is Slot => s === 'a' || s === 'b';
    if (!ok(env.committed) || !(env.trial === null || ok(env.trial)))
      throw new FlotillaError('BOOTLOADER_FAILED', `${this.path} is not a boot environment: ${text.slice(0, 100)}`);
    return { committed: env.committed, trial: env.trial };
  }

  async armTrial(slot: Slot): Promise<void> {
    await this.write({ ...(await this.read()), trial: slot });
  }

  async commit(slot: Slot): Promise<void> {
    await this.write({ committed: slot, trial: null });
  }

  write(env: BootEnv): Promise<void> {
    return writeFileAtomic(this.path, `${JSON.stringify(env)}\n`, 0o644);
  }
}

export class FileBootSimulator implements BootSimulator {
  constructor(private readonly file: FileBootloader) {}

  async boot(): Promise<Slot> {
    const env = await this.file.read();
    if (env.trial === null) return env.committed;
    await this.file.write({ committed: env.committed, trial: null });
    return env.trial;
  }
}
