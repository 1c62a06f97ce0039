import { hostname as osHostname } from 'node:os';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../config/atomic-write.js';

/**
 * Changes to the host the agent runs on. INVARIANT: only the 'real' implementation touches the machine, and it is
 * chosen explicitly (flag or FLOTILLA_AGENT_HOST_CONFIG=real); tests and non-balenaOS hosts run dry.
 */
export interface HostConfig {
  readonly mode: 'real' | 'dry-run';
  setHostname(name: string): Promise<void>;
  hostname(): string;
}

export class DryRunHostConfig implements HostConfig {
  readonly mode = 'dry-run';
  private wanted: string | undefined;

  constructor(private readonly log: Logger) {}

  async setHostname(name: string): Promise<void> {
    if (name !== this.wanted)
      this.log.info({ hostname: name }, 'host config (dry run): hostname not changed on this machine');
    this.wanted = name;
  }

  hostname(): string {
    return this.wanted ?? osHostname();
  }
}

/** balenaOS-style: the hostname lives in /etc/hostname (the OS applies it on its own). */
export class EtcHostConfig implements HostConfig {
  readonly mode = 'real';
  private current: string | undefined;

  constructor(
    private readonly log: Logger,
    private readonly file = '/etc/hostname',
  ) {}

  async setHostname(name: string): Promise<void> {
    if (name === this.current) return;
    await writeFileAtomic(this.file, `${name}\n`, 0o644);
    this.current = name;
    this.log.info({ hostname: name, file: this.file }, 'hostname written');
  }

  hostname(): string {
    return this.current ?? osHostname();
  }
}

export function selectHostConfig(mode: string | undefined, log: Logger): HostConfig {
  return (mode ?? process.env.FLOTILLA_AGENT_HOST_CONFIG) === 'real'
    ? new EtcHostConfig(log)
    : new DryRunHostConfig(log);
}
