import type { Logger } from 'pino';
import { configVarKey, CONFIG_DEFAULTS, type DeviceRollback, type TargetDevice } from '@flotilla/protocol';
import type { ContainerEngine, ContainerRun } from '../engine/container-engine.js';
import type { CurrentState, TargetModel } from '../reconcile/state.js';
import type { Store } from '../store/store.js';
import {
  committedApp,
  committedImages,
  effectiveDevice,
  forgetStale,
  reportedRollback,
  targetCommit,
  type Rollout,
} from './rollout.js';
import { CRASH_LOOP_RESTARTS, verdict, type ServiceRun } from './verdict.js';

/** Output lines of the failing service sent with the rollback. */
export const ROLLBACK_LOG_LINES = 20;

/** Config var `ROLLBACK_SOAK_SECONDS` (any prefix) in ms; the default when absent or not a number ≥ 0. */
export function soakMsOf(device: TargetDevice | undefined): number {
  const entry = Object.entries(device?.config ?? {}).find(([k]) => configVarKey(k) === 'ROLLBACK_SOAK_SECONDS');
  const seconds = Number(entry?.[1] ?? CONFIG_DEFAULTS.ROLLBACK_SOAK_SECONDS);
  return Number.isFinite(seconds) && seconds >= 0
    ? Math.round(seconds * 1000)
    : Number(CONFIG_DEFAULTS.ROLLBACK_SOAK_SECONDS) * 1000;
}

/** How often a release under watch is looked at: often enough for a soak of seconds, rarely for one of minutes. */
export function checkEveryMs(soakMs: number): number {
  return Math.min(2_000, Math.max(250, Math.round(soakMs / 10)));
}

export interface ReleaseWatchDeps {
  store: Pick<Store, 'getRollout' | 'setRollout'>;
  engine: Pick<ContainerEngine, 'inspectRun' | 'lastExitCode' | 'tailLogs'>;
  /** The target as stored (from the control plane or local), before any refusal is applied to it. */
  device: () => TargetDevice | undefined;
  log: Logger;
  /** A line in the device logs (shipped to the control plane when it is reachable). */
  system: (message: string) => void;
  /** Something the state report shows changed. */
  changed: () => void;
  /** Ask for a reconcile pass (a rollback to carry out, a soak to look at again, images to prune). */
  wake: () => void;
  /**
   * `<appId>/<service>` stopped on request (held, or the first half of a restart): their exit is no failure.
   * WARNING: without it, `stop-service` during a soak would roll the release back.
   */
  stoppedOnRequest: (model: TargetModel | null) => ReadonlySet<string>;
  now?: () => number;
}

/**
 * Self-rollback. After each reconcile pass it looks at every app whose target release is not committed yet: once
 * the release has converged it is watched for the soak time; if a service fails meanwhile (verdict.ts) the release
 * is refused and the app goes back to its committed release, through the target the reconciler applies
 * (`effective()`), so the rollback is an ordinary, idempotent pass. Everything is decided from the persisted
 * Rollout and the engine, never from the control plane, so it works offline and resumes after a kill -9.
 * INVARIANT: the refusal is persisted before any pass acts on it, and the committed release's images are kept
 * (`keepImages()`) until a newer release is committed.
 */
export class ReleaseWatch {
  private rollout: Rollout;
  private timer: NodeJS.Timeout | undefined;
  /** Per container under watch, the start times seen (see counted()). */
  private readonly starts = new Map<string, Set<string>>();
  private readonly now: () => number;

  constructor(private readonly deps: ReleaseWatchDeps) {
    this.rollout = deps.store.getRollout();
    this.now = deps.now ?? Date.now;
  }

  /** The device to apply: the stored target with refused releases replaced by the committed ones. */
  effective(device: TargetDevice): TargetDevice {
    return effectiveDevice(device, this.rollout);
  }

  keepImages(): ReadonlySet<string> {
    return committedImages(this.rollout);
  }

  /** The rollback the device reports while it refuses a release; null otherwise. */
  rollback(): DeviceRollback | null {
    return reportedRollback(this.rollout);
  }

  /** Told to try again (a forced update): refused releases are applied and watched anew. */
  retry(): void {
    if (Object.keys(this.rollout.refused).length === 0) return;
    this.deps.system('Update forced: trying the refused release again');
    this.save({ ...this.rollout, refused: {} });
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** After a pass: `current` and `statuses` as the pass last saw them, `model` the target it applied. */
  async afterPass(view: {
    current: CurrentState | undefined;
    statuses: ReadonlyMap<number, string>;
    model: TargetModel | null;
  }): Promise<void> {
    const device = this.deps.device();
    if (!device || !view.current) return;
    const soakMs = soakMsOf(device);
    const now = this.now();
    let next = forgetStale(this.rollout, device);
    for (const [appUuid, app] of Object.entries(device.apps)) {
      const commit = targetCommit(app);
      if (commit === null || next.refused[appUuid] || next.committed[appUuid]?.commit === commit) continue;
      const converged = view.statuses.get(app.id) === 'done';
      const previous = next.committed[appUuid];
      const soak = next.soaking[appUuid];
      if (!previous || soakMs === 0) {
        // Nothing to go back to (first release on this device) or watching is off: it is the release to keep.
        if (converged) next = this.commit(next, appUuid, committedApp(app, commit));
        continue;
      }
      const modelApp = view.model?.apps.find((a) => a.appUuid === appUuid);
      const stopped = this.deps.stoppedOnRequest(view.model);
      const watched = (modelApp?.services ?? [])
        .filter((svc) => svc.running && !stopped.has(`${svc.appId}/${svc.serviceName}`))
        .map((svc) => ({
          svc,
          container: view.current?.containers
            .filter((c) => c.appId === app.id && c.serviceName === svc.serviceName && c.configHash === svc.configHash)
            .sort((a, b) => b.createdAt - a.createdAt)[0],
        }));
      if (soak?.commit !== commit) {
        // Applied: every service of it has its container. Not "converged": a crash loop can keep passes from ending
        // done (the engine shows a container between two restarts as exited, which a pass starts again).
        if (!converged && !watched.every((w) => w.container)) continue;
        next = {
          ...next,
          soaking: { ...next.soaking, [appUuid]: { commit, since: now, app: committedApp(app, commit).app } },
        };
        this.deps.system(`Watching release ${commit} for ${soakMs / 1000} s before keeping it`);
        continue;
      }
      const ended = now - soak.since >= soakMs;
      const runs: ServiceRun[] = [];
      for (const { svc, container } of watched) {
        if (!container) continue;
        runs.push({
          service: svc.serviceName,
          containerId: container.id,
          restart: svc.restart,
          run: await this.exitKnown(
            container.id,
            this.counted(container.id, await this.deps.engine.inspectRun(container.id)),
            soak.since,
          ),
        });
      }
      const failure = verdict(runs, ended);
      if (failure) {
        const logs = await this.deps.engine.tailLogs(failure.containerId, ROLLBACK_LOG_LINES).catch(() => []);
        const rollback: DeviceRollback = {
          from_commit: commit,
          to_commit: previous.commit,
          reason: failure.reason,
          service: failure.service,
          logs: logs.map((l) => l.slice(0, 2000)),
          at: new Date(now).toISOString(),
        };
        const { [appUuid]: _, ...soaking } = next.soaking;
        next = { ...next, soaking, refused: { ...next.refused, [appUuid]: rollback } };
        this.deps.log.error(
          { app: appUuid, from: commit, to: previous.commit, reason: failure.reason },
          'rolling back',
        );
        this.deps.system(`Rolling back from release ${commit} to ${previous.commit}: ${failure.reason}`);
      } else if (ended && converged) {
        next = this.commit(next, appUuid, committedApp(app, commit));
        this.deps.system(`Release ${commit} ran well for ${soakMs / 1000} s; keeping it`);
      }
    }
    if (Object.keys(next.soaking).length === 0) this.starts.clear();
    this.save(next);
    this.schedule(soakMs);
  }

  /**
   * The run with its restarts as the larger of the engine's count and the starts seen here. WARNING: the engine resets
   * its count when the container is started by hand, which a pass does when it finds it exited between two restarts;
   * the starts seen (in memory: after a restart of the agent the engine's count is what is left) keep the tally.
   */
  private counted(id: string, run: ContainerRun | undefined): ContainerRun | undefined {
    if (!run) return run;
    const seen = this.starts.get(id) ?? new Set<string>();
    if (run.startedAt) seen.add(run.startedAt);
    this.starts.set(id, seen);
    return { ...run, restartCount: Math.max(run.restartCount, seen.size - 1) };
  }

  /**
   * A crash-looping run with the exit code of its last exit: the engine shows 0 once its policy has started the
   * container again, so the code comes from its event log (looked up only for a run that fails, once).
   */
  private async exitKnown(id: string, run: ContainerRun | undefined, since: number) {
    if (!run || run.restartCount < CRASH_LOOP_RESTARTS || run.exitCode !== 0) return run;
    const exitCode = await this.deps.engine.lastExitCode(id, since - 1_000).catch(() => undefined);
    return exitCode === undefined ? run : { ...run, exitCode };
  }

  private commit(rollout: Rollout, appUuid: string, committed: Rollout['committed'][string]): Rollout {
    const { [appUuid]: _, ...soaking } = rollout.soaking;
    return { ...rollout, soaking, committed: { ...rollout.committed, [appUuid]: committed } };
  }

  private save(next: Rollout): void {
    if (JSON.stringify(next) === JSON.stringify(this.rollout)) return;
    // Persisted before anything acts on it: the next pass applies the refusal or prunes the old images.
    this.deps.store.setRollout(next);
    this.rollout = next;
    this.deps.changed();
    this.deps.wake();
  }

  /** While a release is under watch, come back for another look (each look is one reconcile pass). */
  private schedule(soakMs: number): void {
    clearTimeout(this.timer);
    if (Object.keys(this.rollout.soaking).length === 0) return;
    this.timer = setTimeout(() => this.deps.wake(), checkEveryMs(soakMs));
    this.timer.unref();
  }
}
