import type { Logger } from 'pino';
import { DEFAULT_POLL_INTERVAL_MS, POLL_JITTER_MS, configVarKey, type TargetDevice } from '@flotilla/protocol';
import type { Store } from '../store/store.js';
import { Wakeable, backoffMs } from '../util/wakeable.js';
import { HttpError, type ControlPlane } from './control-plane.js';

export interface PollerDeps {
  controlPlane: ControlPlane;
  store: Store;
  log: Logger;
  uuid: string;
  deviceApiKey: string;
  /** Interval when nothing in target config says otherwise (config.json appUpdatePollInterval or the default). */
  baseIntervalMs: number;
  /** Test/bench override: fixed interval, no jitter. */
  fixedIntervalMs?: number;
  /** Called after every poll attempt (changed or not): the level-based loop re-checks the world each time. */
  onPolled: (poll: { changed: boolean; ok: boolean; startedAt: number }) => void;
  onError: (error: Error) => void;
}

/** SUPERVISOR_POLL_INTERVAL from target config (any of its prefixes) wins over config.json. */
export function pollInterval(device: TargetDevice | undefined, base: number): number {
  for (const [name, value] of Object.entries(device?.config ?? {})) {
    if (configVarKey(name) === 'SUPERVISOR_POLL_INTERVAL') {
      const ms = Number(value);
      if (Number.isFinite(ms) && ms >= 10_000) return ms;
    }
  }
  return base;
}

export class Poller {
  private readonly wake = new Wakeable();
  private failures = 0;
  private loop: Promise<void> | undefined;

  constructor(private readonly deps: PollerDeps) {}

  start(signal: AbortSignal): void {
    this.loop = this.run(signal);
  }

  /** Poll now (e.g. the control plane asked, or a user forced an update). */
  trigger(): void {
    this.wake.wake();
  }

  async stopped(): Promise<void> {
    await this.loop;
  }

  private nextDelay(): number {
    const { deps } = this;
    const interval =
      deps.fixedIntervalMs ??
      pollInterval(deps.store.getTarget()?.device, deps.baseIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    if (this.failures > 0) return backoffMs(this.failures, interval);
    const jitter = deps.fixedIntervalMs === undefined ? Math.random() * Math.min(POLL_JITTER_MS, interval / 10) : 0;
    return interval + jitter;
  }

  private async run(signal: AbortSignal): Promise<void> {
    const { deps } = this;
    while (!signal.aborted) {
      let changed = false;
      let ok = false;
      const startedAt = Date.now();
      try {
        const previous = deps.store.getTarget();
        const etag = previous?.source === 'cloud' ? previous.etag : null;
        const result = await deps.controlPlane.fetchTarget(deps.uuid, deps.deviceApiKey, etag, signal);
        if (result.kind === 'changed') {
          // INVARIANT: persisted before anything acts on it, so a crash right after resumes with this target.
          deps.store.setTarget({ device: result.device, etag: result.etag, source: 'cloud' });
          changed = true;
          deps.log.info({ etag: result.etag }, 'new target state');
        }
        this.failures = 0;
        ok = true;
      } catch (error) {
        if (signal.aborted) break;
        this.failures += 1;
        const err = error instanceof Error ? error : new Error(String(error));
        deps.log.warn(
          { err: err.message, failures: this.failures, permanent: error instanceof HttpError && !error.transient },
          'target state fetch failed; keeping the last target',
        );
        deps.onError(err);
      }
      deps.onPolled({ changed, ok, startedAt });
      await this.wake.sleep(this.nextDelay(), signal);
    }
  }
}
