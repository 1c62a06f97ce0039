import type { Logger } from 'pino';
import { REPORT_MIN_INTERVAL_MS, type DeviceReport } from '@flotilla/protocol';
import type { ControlPlane } from '../control-plane/control-plane.js';
import type { Store } from '../store/store.js';
import { Wakeable, backoffMs, pause } from '../util/wakeable.js';
import { diffReport, mergeReport } from './build-report.js';

export interface ReporterDeps {
  controlPlane: ControlPlane;
  store: Store;
  log: Logger;
  uuid: string;
  deviceApiKey: string;
  /** The full report as of now; undefined while there is nothing to say yet (before the first pass). */
  build: () => Promise<DeviceReport | undefined>;
  minIntervalMs?: number;
  /** Metrics change on their own: a report is considered at least this often. */
  metricsIntervalMs?: number;
}

/**
 * Sends diffs of the current state against the last report the control plane ACKed (persisted, so a restart does
 * not resend everything), at most once per REPORT_MIN_INTERVAL_MS except the first. Failed sends back off and the
 * diff is recomputed on the next try, so nothing is lost and nothing stale is sent.
 */
export class Reporter {
  private readonly wake = new Wakeable();
  private lastSentAt = 0;
  private failures = 0;
  private loop: Promise<void> | undefined;
  reportsSent = 0;

  constructor(private readonly deps: ReporterDeps) {}

  start(signal: AbortSignal): void {
    this.loop = this.run(signal);
  }

  trigger(): void {
    this.wake.wake();
  }

  async stopped(): Promise<void> {
    await this.loop;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    const minInterval = deps.minIntervalMs ?? REPORT_MIN_INTERVAL_MS;
    const metricsInterval = deps.metricsIntervalMs ?? 300_000;
    while (!signal.aborted) {
      const wait = this.lastSentAt === 0 ? 0 : this.lastSentAt + minInterval - Date.now();
      if (wait > 0) await pause(wait, signal);
      if (signal.aborted) break;
      let delay = metricsInterval;
      try {
        const full = await deps.build();
        if (full) {
          const last = deps.store.getLastReport();
          const diff = diffReport(last, full);
          if (Object.keys(diff).length > 0) {
            await deps.controlPlane.report({ [deps.uuid]: diff }, deps.deviceApiKey, signal);
            // INVARIANT: the ACKed state is what the control plane now holds; later diffs are against it.
            deps.store.setLastReport(mergeReport(last, diff));
            this.lastSentAt = Date.now();
            this.reportsSent += 1;
            deps.log.debug({ keys: Object.keys(diff) }, 'state reported');
          }
        }
        this.failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        this.failures += 1;
        delay = backoffMs(this.failures, metricsInterval, 2_000);
        deps.log.warn({ err: (error as Error).message, failures: this.failures }, 'state report failed');
      }
      await this.wake.sleep(delay, signal);
    }
  }
}
