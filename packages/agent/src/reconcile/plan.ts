import type {
  CurrentContainer,
  CurrentState,
  LocalImage,
  PlanContext,
  TargetApp,
  TargetModel,
  TargetService,
} from './state.js';
import { step, type Step } from './steps.js';
import { deltaTag } from '../deltas/delta-tag.js';

/**
 * The pure planner: given what runs and what should run, the steps that can be taken NOW. It never looks at Docker,
 * disk or the network. The loop executes the steps, re-reads the world and calls plan() again until it returns no
 * step; so each call only emits steps whose preconditions hold in `current` (e.g. a container is created only once
 * its image, networks and volumes exist; started only once its dependencies run).
 */

const LOCK_RETRY_MS = 5_000;
/**
 * Longest wait for a closed maintenance window before the planner looks again: a clock set late (no RTC before
 * NTP) or a time-zone rule change then costs at most this much delay.
 */
export const WINDOW_RECHECK_MS = 300_000;
/** What an app waiting for its window may still do: download, and start a container that already runs the target. */
const ALLOWED_OUTSIDE_WINDOW = new Set<Step['action']>(['fetch', 'startContainer']);
const DEPENDENCY_RETRY_MS = 2_000;
/** The kill reason when hand-over cannot run old and new side by side (the system log says so). */
export const HANDOVER_FELL_BACK = 'hand-over fell back to stop-then-start';

/** Whether `ref` names a local image: by tag, by `repo@digest`, or by image id. */
export function findImage(images: readonly LocalImage[], ref: string): LocalImage | undefined {
  const normalized = ref.includes(':') || ref.includes('@') ? ref : `${ref}:latest`;
  const loaded = deltaTag(ref);
  return images.find(
    (i) =>
      i.id === ref ||
      i.repoTags.includes(normalized) ||
      i.repoDigests.includes(ref) ||
      digestMatch(i, ref) ||
      (loaded !== undefined && i.repoTags.includes(loaded)),
  );
}

/** `registry/repo@sha256:x` matches an image pulled under another repo name only by digest (balena re-tags releases). */
function digestMatch(image: LocalImage, ref: string): boolean {
  const at = ref.indexOf('@sha256:');
  if (at < 0) return false;
  const digest = ref.slice(at + 1);
  return image.repoDigests.some((d) => d.endsWith(`@${digest}`));
}

const isUp = (c: CurrentContainer): boolean => c.state === 'running' || c.state === 'restarting';

/**
 * A container runs `svc` as planned: same config hash, same image, and attached to every network it should be (a
 * crash between create and connecting its extra networks leaves one that is not, which is then replaced).
 */
function matches(c: CurrentContainer, svc: TargetService, images: readonly LocalImage[]): boolean {
  const image = findImage(images, svc.image);
  return (
    image !== undefined &&
    c.configHash === svc.configHash &&
    c.imageId === image.id &&
    svc.networks.every((n) => c.networks.includes(n))
  );
}

class Planner {
  readonly steps: Step[] = [];

  constructor(
    private readonly current: CurrentState,
    private readonly target: TargetModel,
    private readonly ctx: PlanContext,
  ) {}

  /** Update locks do not hold this app back: overridden by config, a forced update, or a forced action. */
  private overridden(appId: number): boolean {
    return this.ctx.overrideLock || this.ctx.requests.force.has(appId);
  }

  private locked(appId: number): boolean {
    return this.ctx.lockedApps.has(appId) && !this.overridden(appId);
  }

  /** The services of an app that have a container (each mounts its lock folder), in a stable order. */
  private lockServices(appId: number): string[] {
    return [...new Set(this.containersOf(appId).map((c) => c.serviceName))].sort();
  }

  /**
   * Kill/stop go through here. INVARIANT: no container of an app is killed or stopped while one of its services
   * holds the update lock (unless overridden), nor before the agent holds the lock itself, so no service can take
   * it between the scan and the kill (a planned takeLock comes first; the kill in the next round).
   */
  private mayKill(c: CurrentContainer): boolean {
    if (this.locked(c.appId)) {
      this.steps.push(
        step('wait', {
          reason: `update lock held by app ${c.appId}`,
          retryAfterMs: LOCK_RETRY_MS,
          appId: c.appId,
          lock: true,
        }),
      );
      return false;
    }
    if (this.overridden(c.appId)) return true;
    const services = this.lockServices(c.appId);
    if (services.every((s) => this.ctx.agentLocks.has(`${c.appId}/${s}`))) return true;
    this.steps.push(step('takeLock', { appId: c.appId, services }));
    return false;
  }

  private kill(c: CurrentContainer, reason: string): void {
    if (this.mayKill(c))
      this.steps.push(step('killContainer', { containerId: c.id, serviceName: c.serviceName, appId: c.appId, reason }));
  }

  private stop(c: CurrentContainer): void {
    if (this.mayKill(c))
      this.steps.push(step('stopContainer', { containerId: c.id, serviceName: c.serviceName, appId: c.appId }));
  }

  /** Stopped on request (persisted hold) or being stopped by a device action (the first half of a restart). */
  private held(appId: number, serviceName: string): boolean {
    const key = `${appId}/${serviceName}`;
    return this.ctx.heldStopped.has(key) || this.ctx.requests.stop.has(key);
  }

  private containersOf(appId: number): CurrentContainer[] {
    return this.current.containers.filter((c) => c.appId === appId);
  }

  run(): Step[] {
    const { purge } = this.ctx.requests;
    // A purged app is planned as if it had left the target; the passes after the purge bring it back.
    const active = this.target.apps.filter((a) => !purge.has(a.appId));
    for (const app of active) {
      const from = this.steps.length;
      this.planApp(app);
      if (this.mustWaitForWindow(app)) this.holdForWindow(app.appId, from);
    }
    this.planRemovedApps(new Set(active.map((a) => a.appId)));
    if (this.steps.every((s) => s.action === 'wait')) this.planImageCleanup();
    this.planLockRelease();
    return dedupe(this.steps);
  }

  private planRemovedApps(activeIds: ReadonlySet<number>): void {
    const gone = new Set<number>();
    for (const o of [...this.current.containers, ...this.current.volumes, ...this.current.networks])
      if (!activeIds.has(o.appId)) gone.add(o.appId);
    for (const appId of gone) {
      const purged = this.ctx.requests.purge.has(appId);
      // An app leaving the target is an update too; a purge is a device action, done when asked.
      if (!purged && this.windowClosed()) {
        this.holdForWindow(appId, this.steps.length);
        continue;
      }
      const containers = this.containersOf(appId);
      for (const c of containers) this.kill(c, purged ? 'purge' : 'app removed from target');
      // Volumes and networks go only once no container of the app is left (the engine refuses otherwise).
      if (containers.length === 0) {
        // A purge empties the app's data; its networks hold none and stay.
        if (!purged)
          for (const n of this.current.networks.filter((x) => x.appId === appId))
            this.steps.push(step('removeNetwork', { name: n.name }));
        for (const v of this.current.volumes.filter((x) => x.appId === appId))
          this.steps.push(step('removeVolume', { name: v.name }));
      }
    }
  }

  private windowClosed(): boolean {
    return this.ctx.updateWindow?.mayApply === false;
  }

  /**
   * Outside its maintenance window an app that is being updated (a service without a container running its target,
   * a container of a service that left it, a network whose definition changed) changes nothing. An app with no
   * container at all is installed at once: nothing runs that an update could disturb.
   */
  private mustWaitForWindow(app: TargetApp): boolean {
    if (!this.windowClosed()) return false;
    const containers = this.containersOf(app.appId);
    if (containers.length === 0) return false;
    const { images } = this.current;
    const names = new Set(app.services.map((s) => s.serviceName));
    return (
      containers.some((c) => !names.has(c.serviceName)) ||
      app.services.some(
        (svc) => !containers.some((c) => c.serviceName === svc.serviceName && matches(c, svc, images)),
      ) ||
      app.networks.some((n) => {
        const existing = this.current.networks.find((x) => x.name === n.name);
        return existing !== undefined && existing.configHash !== n.configHash;
      })
    );
  }

  /**
   * Replaces the steps planned for `appId` from index `from` on with what may happen outside the window (the
   * downloads the update strategy makes before it touches the old containers) and a wait for the window.
   */
  private holdForWindow(appId: number, from: number): void {
    const kept = this.steps.splice(from).filter((s) => ALLOWED_OUTSIDE_WINDOW.has(s.action));
    this.steps.push(...kept);
    const opensAt = this.ctx.updateWindow?.opensAt ?? null;
    const until = opensAt === null ? WINDOW_RECHECK_MS : opensAt - this.ctx.now;
    this.steps.push(
      step('wait', {
        reason:
          opensAt === null
            ? `app ${appId} waits for its update window`
            : `app ${appId} waits for its update window (opens ${new Date(opensAt).toISOString()})`,
        retryAfterMs: Math.max(1_000, Math.min(WINDOW_RECHECK_MS, until)),
        appId,
        window: true,
      }),
    );
  }

  /** The agent lets go of an app's update lock once nothing of the app is left to kill or stop. */
  private planLockRelease(): void {
    const held = new Map<number, string[]>();
    for (const key of this.ctx.agentLocks) {
      const slash = key.indexOf('/');
      const appId = Number(key.slice(0, slash));
      held.set(appId, [...(held.get(appId) ?? []), key.slice(slash + 1)]);
    }
    for (const [appId, services] of held) {
      const killing = this.steps.some(
        (s) =>
          (s.action === 'killContainer' || s.action === 'stopContainer' || s.action === 'takeLock') &&
          s.appId === appId,
      );
      if (!killing) this.steps.push(step('releaseLock', { appId, services: services.sort() }));
    }
  }

  private planApp(app: TargetApp): void {
    const { current } = this;
    const containers = this.containersOf(app.appId);
    const existingNetworks = new Set<string>();
    for (const n of app.networks) {
      const existing = current.networks.find((x) => x.name === n.name);
      if (!existing) {
        this.steps.push(step('createNetwork', { network: n }));
      } else if (existing.configHash !== n.configHash) {
        // Changed definition: the engine cannot edit a network; its containers go first, then it is re-created.
        const attached = containers.filter((c) => c.networks.includes(n.name));
        for (const c of attached) this.kill(c, `network ${n.name} changed`);
        if (attached.length === 0) this.steps.push(step('removeNetwork', { name: n.name }));
      } else {
        existingNetworks.add(n.name);
      }
    }
    const existingVolumes = new Set(current.volumes.map((v) => v.name));
    for (const v of app.volumes) if (!existingVolumes.has(v.name)) this.steps.push(step('createVolume', { volume: v }));

    const targetNames = new Set(app.services.map((s) => s.serviceName));
    for (const c of containers) if (!targetNames.has(c.serviceName)) this.kill(c, 'service removed from target');

    // download-then-kill (and hand-over) kill nothing until every image of the app is present.
    const allImagesReady = app.services.every((s) => findImage(current.images, s.image) !== undefined);
    const toStop: Array<{ svc: TargetService; container: CurrentContainer }> = [];
    for (const svc of app.services)
      this.planService(app, svc, containers, allImagesReady, existingNetworks, existingVolumes, toStop);
    this.planStops(app, toStop);

    // Networks the release no longer declares go once no container uses them.
    const wanted = new Set(app.networks.map((n) => n.name));
    for (const n of current.networks.filter((x) => x.appId === app.appId && !wanted.has(x.name))) {
      if (!containers.some((c) => c.networks.includes(n.name)))
        this.steps.push(step('removeNetwork', { name: n.name }));
    }
  }

  private planService(
    app: TargetApp,
    svc: TargetService,
    appContainers: CurrentContainer[],
    allImagesReady: boolean,
    networks: ReadonlySet<string>,
    volumes: ReadonlySet<string>,
    toStop: Array<{ svc: TargetService; container: CurrentContainer }>,
  ): void {
    const { images } = this.current;
    const mine = appContainers.filter((c) => c.serviceName === svc.serviceName);
    const matching = mine
      .filter((c) => matches(c, svc, images))
      .sort((a, b) => Number(isUp(b)) - Number(isUp(a)) || b.createdAt - a.createdAt);
    const others = mine.filter((c) => !matching.includes(c));
    const image = findImage(images, svc.image);
    const [keep, ...duplicates] = matching;
    // Duplicates come from a crash between create and the next re-read; the one kept is running or newest.
    for (const d of duplicates) this.kill(d, 'duplicate');

    if (keep) {
      if (others.length > 0) this.retireOld(svc, keep, others);
      if (keep.name !== svc.containerName)
        this.steps.push(step('updateMetadata', { containerId: keep.id, name: svc.containerName }));
      // A service stopped on request stays stopped: as if its target said `running: false`.
      const shouldRun = svc.running && !this.held(svc.appId, svc.serviceName);
      if (shouldRun && !isUp(keep)) {
        // A device action's start (or a restart's second half) starts it whatever its restart policy says.
        const mayStart =
          keep.state === 'created' ||
          svc.restart === 'always' ||
          svc.restart === 'unless-stopped' ||
          this.ctx.requests.start.has(`${svc.appId}/${svc.serviceName}`);
        // Hand-over starts the new container beside the old one, unless they would fight over an exclusive resource.
        const oldGone = others.length === 0 || (svc.strategy === 'hand-over' && svc.exclusive === undefined);
        if (mayStart && oldGone) this.startWhenDepsRun(app, svc, keep);
      } else if (!shouldRun && isUp(keep)) {
        toStop.push({ svc, container: keep });
      }
      return;
    }

    // No container matches: the service must be (re)created, following its update strategy.
    const oldUp = others.length > 0;
    if (!image) {
      switch (svc.strategy) {
        case 'download-then-kill':
        case 'hand-over':
          this.steps.push(step('fetch', { image: svc.image, appId: svc.appId, serviceName: svc.serviceName }));
          return;
        case 'kill-then-download':
        case 'delete-then-download':
          if (oldUp) {
            for (const o of others) this.kill(o, `update (${svc.strategy})`);
            return;
          }
          // delete-then-download: disk is freed first; the fetch comes in the next round, once the delete is done.
          if (svc.strategy === 'delete-then-download' && this.deleteOldImages()) return;
          this.steps.push(step('fetch', { image: svc.image, appId: svc.appId, serviceName: svc.serviceName }));
          return;
      }
    }
    if (oldUp && svc.strategy !== 'hand-over') {
      if (allImagesReady) for (const o of others) this.kill(o, `update (${svc.strategy})`);
      return;
    }
    if (svc.networks.every((n) => networks.has(n)) && svc.volumes.every((v) => volumes.has(v))) {
      this.steps.push(step('createContainer', { service: svc }));
    }
  }

  /**
   * Running services that must stop: dependents first (the reverse of the start order), so a service never loses
   * a dependency while it runs; a dependency cycle stops all of them together.
   */
  private planStops(app: TargetApp, toStop: ReadonlyArray<{ svc: TargetService; container: CurrentContainer }>): void {
    const stopping = new Set(toStop.map((x) => x.svc.serviceName));
    const ready = toStop.filter(
      ({ svc }) => !app.services.some((d) => stopping.has(d.serviceName) && d.dependsOn.includes(svc.serviceName)),
    );
    for (const { container } of ready.length > 0 ? ready : toStop) this.stop(container);
  }

  /** Old containers of a service whose new container exists: kill now, or after hand-over completes. */
  private retireOld(svc: TargetService, fresh: CurrentContainer, old: CurrentContainer[]): void {
    if (svc.strategy === 'hand-over' && svc.exclusive !== undefined) {
      // The new container could never start while the old one holds the resource (the start fails forever): it is
      // created first, then the old one goes, then it starts, so the gap is one stop and one start.
      for (const o of old) this.kill(o, `${HANDOVER_FELL_BACK}: ${svc.exclusive}`);
      return;
    }
    if (svc.strategy === 'hand-over' && old.some(isUp)) {
      if (!isUp(fresh)) return; // start the new one first (planned by the caller)
      const deadline = fresh.createdAt + svc.handoverTimeoutMs;
      const complete = this.ctx.handoverComplete.has(`${svc.appId}/${svc.serviceName}`);
      if (!complete && this.ctx.now < deadline) {
        this.steps.push(
          step('wait', {
            reason: `hand-over of ${svc.appId}/${svc.serviceName}`,
            retryAfterMs: Math.min(1_000, deadline - this.ctx.now),
            appId: svc.appId,
          }),
        );
        return;
      }
    }
    for (const o of old) this.kill(o, svc.strategy === 'hand-over' ? 'handed over' : 'replaced');
  }

  /** delete-then-download frees disk first: remove the old images of this service no container still uses. */
  private deleteOldImages(): boolean {
    const inUse = new Set(this.current.containers.map((c) => c.imageId));
    const targetImages = new Set(this.target.apps.flatMap((a) => a.services.map((s) => s.image)));
    let any = false;
    for (const ref of this.current.knownImages) {
      const img = findImage(this.current.images, ref);
      if (img && !inUse.has(img.id) && !targetImages.has(ref)) {
        this.steps.push(step('removeImage', { image: ref }));
        any = true;
      }
    }
    return any;
  }

  private startWhenDepsRun(app: TargetApp, svc: TargetService, c: CurrentContainer): void {
    const waiting = svc.dependsOn.filter((dep) => {
      const depSvc = app.services.find((s) => s.serviceName === dep);
      // A dependency that is not meant to run (target or held stopped) does not block its dependents.
      if (!depSvc?.running || this.held(app.appId, dep)) return false;
      return !this.current.containers.some(
        (x) => x.appId === app.appId && x.serviceName === dep && isUp(x) && matches(x, depSvc, this.current.images),
      );
    });
    if (waiting.length > 0) {
      this.steps.push(
        step('wait', {
          reason: `${svc.serviceName} waits for ${waiting.join(', ')}`,
          retryAfterMs: DEPENDENCY_RETRY_MS,
          appId: app.appId,
        }),
      );
      return;
    }
    this.steps.push(step('startContainer', { containerId: c.id, serviceName: svc.serviceName, appId: app.appId }));
  }

  /** Images we fetched or adopted that neither current containers nor target need any more. Last, when idle. */
  private planImageCleanup(): void {
    const inUse = new Set(this.current.containers.map((c) => c.imageId));
    const targetImages = new Set(this.target.apps.flatMap((a) => a.services.map((s) => s.image)));
    const targetIds = new Set(
      this.target.apps
        .flatMap((a) => a.services.map((s) => findImage(this.current.images, s.image)?.id))
        .filter((x): x is string => x !== undefined),
    );
    for (const ref of this.current.knownImages) {
      if (targetImages.has(ref) || this.ctx.keepImages?.has(ref)) continue;
      const img = findImage(this.current.images, ref);
      // A ref already gone is forgotten by the executor's removeImage (idempotent).
      if (!img || (!inUse.has(img.id) && !targetIds.has(img.id))) this.steps.push(step('removeImage', { image: ref }));
    }
  }
}

function dedupe(steps: Step[]): Step[] {
  const seen = new Set<string>();
  return steps.filter((s) => {
    const key = JSON.stringify(s);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function plan(current: CurrentState, target: TargetModel, ctx: PlanContext): Step[] {
  return new Planner(current, target, ctx).run();
}
