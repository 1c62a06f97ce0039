import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';

/**
 * Power and identification of the host. INVARIANT: like HostConfig, only the 'real' implementation touches the
 * machine, and it is chosen by the same explicit switch (`hostConfig: 'real'` / FLOTILLA_AGENT_HOST_CONFIG=real);
 * tests and non-balenaOS hosts run dry and only say what they would have done.
 */
export interface HostPower {
  readonly mode: 'real' | 'dry-run';
  reboot(): Promise<void>;
  shutdown(): Promise<void>;
  /** Make the device findable (blink an LED for a while). */
  identify(): Promise<void>;
}

export class DryRunHostPower implements HostPower {
  readonly mode = 'dry-run';
  /** What would have happened, newest last (tests read it). */
  readonly requests: Array<'reboot' | 'shutdown' | 'identify'> = [];

  constructor(private readonly log: Logger) {}

  async reboot(): Promise<void> {
    this.requests.push('reboot');
    this.log.info('host power (dry run): reboot not performed on this machine');
  }

  async shutdown(): Promise<void> {
    this.requests.push('shutdown');
    this.log.info('host power (dry run): shutdown not performed on this machine');
  }

  async identify(): Promise<void> {
    this.requests.push('identify');
    this.log.info('host power (dry run): no LED blinked');
  }
}

const BLINK_MS = 15_000;

/** systemd host: `systemctl reboot|poweroff`; identify blinks the first LED under /sys/class/leds, if any. */
export class SystemdHostPower implements HostPower {
  readonly mode = 'real';

  constructor(
    private readonly log: Logger,
    private readonly ledsDir = '/sys/class/leds',
  ) {}

  reboot(): Promise<void> {
    return systemctl('reboot');
  }

  shutdown(): Promise<void> {
    return systemctl('poweroff');
  }

  async identify(): Promise<void> {
    const [led] = (await readdir(this.ledsDir).catch(() => [] as string[])).sort();
    if (!led) {
      this.log.info('identify: this host has no LED under /sys/class/leds');
      return;
    }
    const brightness = join(this.ledsDir, led, 'brightness');
    // Not awaited: the request answers at once while the LED blinks for BLINK_MS.
    void (async () => {
      for (let t = 0; t < BLINK_MS; t += 200) {
        await writeFile(brightness, t % 400 === 0 ? '1' : '0');
        await sleep(200);
      }
      await writeFile(brightness, '0');
    })().catch((error: unknown) =>
      this.log.warn({ err: (error as Error).message, led }, 'identify: cannot blink the LED'),
    );
  }
}

function systemctl(verb: 'reboot' | 'poweroff'): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('systemctl', [verb], (error) => (error ? reject(error) : resolve()));
  });
}

export function selectHostPower(mode: string | undefined, log: Logger): HostPower {
  return (mode ?? process.env.FLOTILLA_AGENT_HOST_CONFIG) === 'real'
    ? new SystemdHostPower(log)
    : new DryRunHostPower(log);
}
