import type { Logger } from 'pino';
import type { UpdateStatus } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { LockScan } from '../locks/update-locks.js';
import { containersToFollow } from '../logs/follow.js';
import type { AgentLogs } from '../logs/agent-logs.js';
import type { PhaseEvent } from '../phases/phase-machine.js';
import type { TargetSource } from '../target/target-source.js';
import { runPass, type LoopDeps, type PassResult } from './loop.js';
import type { Observed } from './observed.js';
import type { ActionRequests, CurrentState, PlanContext, TargetModel, WindowVerdict } from './state.js';
import type { Executors, Step } from './steps.js';
import type { UpdateGate } from '../window/update-gate.js';

export interface ReconcilerDeps {
  engine: ContainerEngine;
  executors: Executors;
  namespace: string;
  log: Logger;
  knownImages: () => string[];
  targets: Pick<TargetSource, 'model' | 'overrideLock' | 'force'>;
  /** The update-lock and hand-over files of our services, read before each planning round. */
  scanLocks: () => Promise<LockScan>;
  /** Services stopped on request (`<appId>/<service>`), after dropping holds whose service got a new target. */
  heldStopped: (target: TargetModel) => ReadonlySet<string>;
  /** Device actions waiting for a pass to carry them out. */
  requests: () => ActionRequests;
  /** Where what a pass saw is kept for the reporter and the device API. */
  observed: Observed;
  phase: (event: PhaseEvent) => void;
  logs: Pick<AgentLogs, 'system' | 'sync'>;
  /** Something the state report shows may have changed. */
  changed: () => void;
  /** Images kept for a way back (self-rollback's committed releases). */
  keepImages?: () => ReadonlySet<string>;
  /** The maintenance window: whether changes may be applied now (absent: always). */
  gate?: Pick<UpdateGate, 'verdict' | 'applying' | 'converged'>;
  /** After every pass that was not cancelled, with what it saw (self-rollback watches the release there). */
  afterPass?: (view: {
    current: CurrentState | undefined;
    statuses: ReadonlyMap<number, UpdateStatus>;
    model: TargetModel | null;
  }) => Promise<void>;
}

/**
 * The reconciler (controller-runtime's Reconciler): one pass over the whole target, and what follows from it: the
 * device phase, the system log lines, the containers whose logs are followed, the observed world. When and how
 * often it runs is the controller's business (controller.ts).
 */
export class Reconciler {
  private readonly loop: LoopDeps;
  /** The last pass ended waiting for an update lock: said once when an update starts waiting, not every retry. */
  private lockDeferred = false;
  /** The window's verdict the last planning round was given. */
  private verdict: WindowVerdict | undefined;
  /** The last pass ended waiting for the maintenance window: said once, not every recheck. */
  private windowDeferred = false;

  constructor(private readonly deps: ReconcilerDeps) {
    this.loop = {
      engine: deps.engine,
      executors: deps.executors,
      namespace: deps.namespace,
      log: deps.log,
      knownImages: deps.knownImages,
      target: () => deps.targets.model(),
      context: (target) => this.planContext(target),
      onPlanned: (statuses, current, target, steps) => this.planned(statuses, current, target, steps),
    };
  }

  async reconcile(signal: AbortSignal): Promise<PassResult> {
    const { deps } = this;
    const forced = deps.targets.force.claim();
    const result = await runPass(this.loop, signal);
    deps.targets.force.settle(forced, result.outcome.kind === 'done');
    deps.observed.passed(result);
    if (result.outcome.kind !== 'cancelled') deps.phase('pass-finished');
    if (result.outcome.kind === 'error')
      deps.log.error({ err: result.outcome.error.message, terminal: result.outcome.terminal }, 'reconcile pass failed');
    else if (result.stepsExecuted > 0 || result.outcome.kind === 'retry-after')
      deps.log.info(
        { outcome: result.outcome, iterations: result.iterations, ms: Math.round(result.durationMs) },
        'reconcile pass',
      );
    if (result.outcome.kind === 'done') deps.gate?.converged();
    const wait = deps.observed.windowWait;
    if (wait && !this.windowDeferred)
      deps.logs.system(
        `Update downloaded; waiting for the update window${wait.opensAt === null ? '' : ` (opens ${new Date(wait.opensAt).toISOString()})`}`,
      );
    this.windowDeferred = wait !== null;
    const locked = result.outcome.kind === 'retry-after' && result.outcome.lockedApps.length > 0;
    if (locked && !this.lockDeferred) deps.logs.system('Update lock held, update deferred');
    this.lockDeferred = locked;
    if (result.outcome.kind === 'error') deps.logs.system(`Update failed: ${result.outcome.error.message}`);
    deps.logs.sync(containersToFollow(deps.targets.model(), deps.observed.current?.containers ?? []));
    if (deps.afterPass && result.outcome.kind !== 'cancelled') {
      const model = deps.targets.model();
      // WARNING: never fails the pass: the watch reads the engine, and a failed look is retried at the next pass.
      await deps
        .afterPass({ current: deps.observed.current, statuses: deps.observed.view(model).statuses, model })
        .catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'release watch failed'));
    }
    deps.changed();
    return result;
  }

  private async planContext(target: TargetModel): Promise<PlanContext> {
    const { lockedApps, agentLocks, handoverComplete } = await this.deps.scanLocks();
    this.verdict = this.deps.gate?.verdict();
    return {
      now: Date.now(),
      lockedApps,
      overrideLock: this.deps.targets.overrideLock(),
      handoverComplete,
      heldStopped: this.deps.heldStopped(target),
      agentLocks,
      requests: this.deps.requests(),
      ...(this.deps.keepImages ? { keepImages: this.deps.keepImages() } : {}),
      ...(this.verdict ? { updateWindow: this.verdict } : {}),
    };
  }

  private planned(
    statuses: Map<number, UpdateStatus>,
    current: CurrentState,
    target: TargetModel,
    steps: readonly Step[],
  ): void {
    // Persisted only when there is work, so converged passes cost no disk write.
    if ([...statuses.values()].some((s) => s !== 'done')) this.deps.phase('work-planned');
    // Changes planned while the window allows them: this apply is finished even if the window closes meanwhile.
    if (this.verdict?.mayApply && [...statuses.values()].includes('applying changes')) this.deps.gate?.applying();
    const waiting = steps.some((s) => s.action === 'wait' && s.window === true);
    this.deps.observed.windowWait = waiting ? { opensAt: this.verdict?.opensAt ?? null } : null;
    this.deps.observed.planned(statuses, current, target);
    this.deps.changed();
  }
}
