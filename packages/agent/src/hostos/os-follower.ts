import type { TargetOs } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { HostOsUpdater } from './host-os-updater.js';
import { inProgress, type OsTarget, type UpdateState } from './update-machine.js';

/** A failed write of the same image (a download cut for good, a bad disk) is tried again after this long. */
export const OS_RETRY_AFTER_FAILURE_MS = 10 * 60_000;

export type OsDecision = { start: OsTarget } | { wait: string };

/**
 * Pure: what the target's `os` asks of the updater in `state`. Start it when it names an image other than the one
 * the last update was for and no update is under way. The same image again: nothing once committed; never
 * automatically after a rollback (that OS failed its trial here: a new version is the way on); after a failure
 * (download, digest, slot: its write attempts spent, or the agent restarted mid-write too often) once
 * OS_RETRY_AFTER_FAILURE_MS passed since it was last started (the follower counts its own start as one). A version the booted OS
 * already is (`running`, its os-release VERSION_ID: flashed with it) is not written again.
 */
export function osDecision(
  target: TargetOs | undefined,
  state: UpdateState,
  apiEndpoint: string,
  lastStartedMs: number | undefined,
  nowMs: number,
  running?: string,
): OsDecision {
  if (!target) return { wait: 'no OS target' };
  if (inProgress(state.phase)) return { wait: `an update is ${state.phase}` };
  const start = {
    start: {
      version: target.version,
      url: new URL(target.url, apiEndpoint).href,
      sha256: target.sha256,
      size: target.size,
    },
  };
  if (state.target?.sha256 !== target.sha256)
    return running === target.version ? { wait: `OS ${target.version} is the one running` } : start;
  if (state.phase === 'committed') return { wait: `OS ${target.version} is committed` };
  if (state.phase === 'rolled-back') return { wait: `OS ${target.version} was rolled back on this device` };
  if (state.phase === 'failed' && lastStartedMs !== undefined && nowMs - lastStartedMs < OS_RETRY_AFTER_FAILURE_MS)
    return { wait: `OS ${target.version} failed; trying again later` };
  return start;
}

/**
 * Hands the target's `os` to the updater whenever the target may have changed (and on a timer, for retries).
 * INVARIANT: the agent's own start counts as a start for the retry after a failure: an update given up because the
 * agent kept restarting mid-write (MAX_WRITE_RESTARTS) must not begin again at once on the next start, or a write
 * that brings the agent down would loop for ever; it is tried again OS_RETRY_AFTER_FAILURE_MS later at the earliest.
 */
export class OsFollower {
  private lastStartedMs: number;

  constructor(
    private readonly updater: Pick<HostOsUpdater, 'state' | 'start'>,
    private readonly apiEndpoint: string,
    private readonly log: Logger,
    /** The booted OS's version (os-release VERSION_ID), read at start: the agent starts again after every boot. */
    private readonly running: string | undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.lastStartedMs = now();
  }

  follow(target: TargetOs | undefined): void {
    const decision = osDecision(
      target,
      this.updater.state(),
      this.apiEndpoint,
      this.lastStartedMs,
      this.now(),
      this.running,
    );
    if ('wait' in decision) return;
    this.lastStartedMs = this.now();
    this.log.info({ version: decision.start.version }, 'host OS: the target asks for a new OS');
    this.updater
      .start(decision.start)
      .catch((error: unknown) => this.log.warn({ err: (error as Error).message }, 'host OS update not started'));
  }
}
