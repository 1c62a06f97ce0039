import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { FlotillaError, type DeviceLogLine, type TargetDevice, type UpdateStatus } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { HostConfig } from '../host/host-config.js';
import type { HostPower } from '../host/host-power.js';
import { scanLocks } from '../locks/update-locks.js';
import { findImage } from '../reconcile/plan.js';
import type { CurrentContainer, CurrentState, TargetApp, TargetModel, TargetService } from '../reconcile/state.js';
import { buildAppsReport } from '../report/build-report.js';
import type { Store } from '../store/store.js';
import type { AppStateInfo, DeviceActions, DeviceInfo, ServiceAction } from './backend.js';

/** What the agent lends the actions: its engine, its view of the world, and its single-flight reconcile runner. */
export interface AgentActionsDeps {
  version: string;
  uuid: string;
  apiPort: number;
  namespace: string;
  servicesDir: string;
  engine: ContainerEngine;
  /** Where holds live, so a service stopped on request stays stopped across an agent restart. */
  store: Pick<Store, 'getStopHolds' | 'setStopHolds'>;
  log: Logger;
  hostConfig: HostConfig;
  hostPower: HostPower;
  developmentMode: () => boolean;
  /** The world as the last planning round saw it. */
  view: () => {
    current: CurrentState | undefined;
    target: TargetModel | null;
    statuses: ReadonlyMap<number, UpdateStatus>;
    progress: ReadonlyMap<string, number>;
    failed: boolean;
  };
  /** Config var BALENA_SUPERVISOR_OVERRIDE_LOCK=1. */
  lockOverridden: () => boolean;
  /** Runs `fn` while no reconcile pass (nor another action) touches the engine. */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Ask for a reconcile pass soon. */
  wake: () => void;
  healthy: () => boolean;
  applying: () => boolean;
  triggerUpdate: (force: boolean) => void;
  localTarget: () => TargetDevice | undefined;
  setLocalTarget: (device: TargetDevice) => void;
  system: (message: string) => void;
  subscribeLogs: (listener: (line: DeviceLogLine) => void) => () => void;
}

const STOP_SECONDS = 10;

const isUp = (c: CurrentContainer): boolean => c.state === 'running' || c.state === 'restarting';

/** Services in `depends_on` order (dependencies first); a cycle keeps the remaining ones in target order. */
export function startOrder(services: readonly TargetService[]): TargetService[] {
  const out: TargetService[] = [];
  const placed = new Set<string>();
  let rest = [...services];
  while (rest.length > 0) {
    const ready = rest.filter((s) =>
      s.dependsOn.every((d) => placed.has(d) || !services.some((x) => x.serviceName === d)),
    );
    const batch = ready.length > 0 ? ready : rest;
    for (const s of batch) {
      out.push(s);
      placed.add(s.serviceName);
    }
    rest = rest.filter((s) => !batch.includes(s));
  }
  return out;
}

/**
 * DeviceActions for the real agent: what the local API and the control plane's actions ask of the device.
 *
 * Services stopped on request are "held": the planner does not start them (PlanContext.heldStopped) until they
 * are started again or a new target arrives for them (a different release or config: see `heldStopped`).
 * INVARIANT: every change to `held` is written through to the store (a stop's before its container is stopped), so
 * a crash or power cut never brings back a service the user stopped; an unchanged map is not re-written (fsync).
 */
export class AgentActions implements DeviceActions {
  readonly version: string;
  /** `<appId>/<service>` → the target signature (commit + config hash) it was stopped under. */
  private held: Map<string, string>;

  constructor(private readonly deps: AgentActionsDeps) {
    this.version = deps.version;
    this.held = new Map(Object.entries(deps.store.getStopHolds()));
  }

  /** The held set for the planner, after dropping holds whose service got a new target (or left it). */
  heldStopped(target: TargetModel | null): ReadonlySet<string> {
    const stale = [...this.held].filter(([key, signature]) => {
      const svc = target && findService(target, key);
      return !svc || signature !== signatureOf(svc);
    });
    this.release(stale.map(([key]) => key));
    return new Set(this.held.keys());
  }

  developmentMode(): boolean {
    return this.deps.developmentMode();
  }

  healthy(): boolean {
    return this.deps.healthy();
  }

  applying(): boolean {
    return this.deps.applying();
  }

  triggerUpdate(force: boolean): void {
    this.deps.triggerUpdate(force);
  }

  device(): DeviceInfo {
    const { target, statuses, progress, failed } = this.deps.view();
    const values = [...statuses.values()];
    const updating = values.some((s) => s !== 'done');
    const downloads = [...progress.values()];
    const apps = this.apps();
    return {
      uuid: this.deps.uuid,
      apiPort: this.deps.apiPort,
      ipAddress: ipAddresses().join(' '),
      macAddress: macAddress(),
      osVersion: `${process.platform} ${process.version}`,
      agentVersion: this.version,
      status: failed ? 'Update failed' : updating ? 'Updating' : 'Idle',
      updatePending: updating,
      updateDownloaded:
        values.length > 0 &&
        values.every((s) => s === 'downloaded' || s === 'done') &&
        values.some((s) => s === 'downloaded'),
      updateFailed: failed,
      downloadProgress: downloads.length ? Math.round(downloads.reduce((a, b) => a + b, 0) / downloads.length) : null,
      commit: apps.find((a) => a.commit !== null)?.commit ?? target?.apps[0]?.commit ?? null,
    };
  }

  apps(): AppStateInfo[] {
    const { current, target, statuses, progress, failed } = this.deps.view();
    if (!target) return [];
    const containers = current?.containers ?? [];
    const report = current ? buildAppsReport({ current, target, statuses, progress, failed }) : {};
    return target.apps.map((app) => {
      const reported = report[app.appUuid];
      const services = app.services.map((svc) => {
        const c = containerOf(containers, svc, current);
        const status =
          (app.commit && reported?.releases[app.commit]?.services[svc.serviceName]?.status) ??
          (c ? c.state : 'Awaiting download');
        return {
          serviceName: svc.serviceName,
          serviceId: svc.serviceId,
          appId: app.appId,
          imageId: svc.imageId,
          releaseId: svc.releaseId,
          commit: svc.commit,
          containerId: c?.id ?? null,
          status: this.held.has(`${app.appId}/${svc.serviceName}`) && c && !isUp(c) ? 'Stopped' : status,
          createdAt: c ? new Date(c.createdAt).toISOString() : null,
          downloadProgress: progress.get(svc.image) ?? null,
        };
      });
      return {
        appId: app.appId,
        appUuid: app.appUuid,
        name: app.name,
        commit: reported?.release_uuid ?? null,
        services,
      };
    });
  }

  async restartApp(appId: number, force: boolean): Promise<void> {
    await this.deps.exclusive(async () => {
      await this.guard(appId, force);
      const app = this.targetApp(appId);
      const containers = await this.appContainers(appId);
      const order = startOrder(app.services);
      this.release(order.map((svc) => `${appId}/${svc.serviceName}`));
      this.deps.system(`Restarting app ${app.name}`);
      // Dependents stop first, dependencies start first.
      for (const svc of [...order].reverse()) {
        const c = pick(containers, svc.serviceName);
        if (c && isUp(c)) await this.deps.engine.stopContainer(c.id, STOP_SECONDS);
      }
      for (const svc of order) {
        const c = pick(containers, svc.serviceName);
        if (c && svc.running) await this.deps.engine.startContainer(c.id);
      }
      this.deps.system(`Restarted app ${app.name}`);
    });
    this.deps.wake();
  }

  async purgeApp(appId: number, force: boolean): Promise<void> {
    await this.deps.exclusive(async () => {
      await this.guard(appId, force);
      const app = this.targetApp(appId);
      this.deps.system(`Purging data for app ${app.name}`);
      const snapshot = await this.deps.engine.snapshot(this.deps.namespace);
      for (const c of snapshot.containers.filter((x) => x.appId === appId)) {
        await this.deps.engine.stopContainer(c.id, STOP_SECONDS);
        await this.deps.engine.removeContainer(c.id);
      }
      for (const v of snapshot.volumes.filter((x) => x.appId === appId)) await this.deps.engine.removeVolume(v.name);
      this.release(app.services.map((svc) => `${appId}/${svc.serviceName}`));
      this.deps.system(`Purged data for app ${app.name}`);
    });
    // The reconciler re-creates the volumes (empty) and the containers.
    this.deps.wake();
  }

  async serviceAction(action: ServiceAction, appId: number, serviceName: string, force: boolean): Promise<void> {
    await this.deps.exclusive(async () => {
      // Starting kills nothing, so only stop and restart respect the update lock.
      if (action !== 'start') await this.guard(appId, force);
      const svc = this.targetApp(appId).services.find((s) => s.serviceName === serviceName);
      if (!svc) throw new FlotillaError('SERVICE_NOT_FOUND', `app ${appId} has no service ${serviceName}`);
      const c = pick(await this.appContainers(appId), serviceName);
      if (!c)
        throw new FlotillaError('SERVICE_NOT_FOUND', `service ${serviceName} of app ${appId} has no container yet`);
      const key = `${appId}/${serviceName}`;
      if (action === 'stop') {
        this.hold(key, signatureOf(svc));
        this.deps.system(`Stopping service '${serviceName}'`);
        await this.deps.engine.stopContainer(c.id, STOP_SECONDS);
        this.deps.system(`Service stopped '${serviceName}'`);
        return;
      }
      this.release([key]);
      if (action === 'restart') {
        this.deps.system(`Restarting service '${serviceName}'`);
        await this.deps.engine.stopContainer(c.id, STOP_SECONDS);
      } else {
        this.deps.system(`Starting service '${serviceName}'`);
      }
      await this.deps.engine.startContainer(c.id);
      this.deps.system(
        action === 'restart' ? `Service restarted '${serviceName}'` : `Service started '${serviceName}'`,
      );
    });
    this.deps.wake();
  }

  async reboot(force: boolean): Promise<void> {
    await this.guardAll(force);
    this.deps.system('Rebooting');
    this.later(() => this.deps.hostPower.reboot());
  }

  async shutdown(force: boolean): Promise<void> {
    await this.guardAll(force);
    this.deps.system('Shutting down');
    this.later(() => this.deps.hostPower.shutdown());
  }

  async identify(): Promise<void> {
    this.deps.system('Identify requested');
    await this.deps.hostPower.identify();
  }

  hostname(): string {
    return this.deps.hostConfig.hostname();
  }

  setHostname(hostname: string): Promise<void> {
    return this.deps.hostConfig.setHostname(hostname);
  }

  localTarget(): TargetDevice | undefined {
    return this.deps.localTarget();
  }

  setLocalTarget(device: TargetDevice): void {
    this.deps.setLocalTarget(device);
  }

  subscribeLogs(listener: (line: DeviceLogLine) => void): () => void {
    return this.deps.subscribeLogs(listener);
  }

  // ----------------------------------------------------------------------------------------------------- helpers
  private hold(key: string, signature: string): void {
    if (this.held.get(key) === signature) return;
    this.persist(new Map(this.held).set(key, signature));
  }

  private release(keys: readonly string[]): void {
    if (!keys.some((k) => this.held.has(k))) return;
    const next = new Map(this.held);
    for (const k of keys) next.delete(k);
    this.persist(next);
  }

  /** Store first, memory second: if the write throws, memory still matches what a restart would load. */
  private persist(next: Map<string, string>): void {
    this.deps.store.setStopHolds(Object.fromEntries(next));
    this.held = next;
  }

  /** INVARIANT: nothing of a locked app is stopped or removed on request unless forced (or overridden by config). */
  private async guard(appId: number, force: boolean): Promise<void> {
    if (force || this.deps.lockOverridden()) return;
    const { lockedApps } = await scanLocks(this.deps.servicesDir, this.deps.namespace);
    if (lockedApps.has(appId)) {
      this.deps.system('Update lock held, action refused');
      throw new FlotillaError(
        'UPDATE_LOCKED',
        `updates.lock is held by a service of app ${appId}; use force to override`,
      );
    }
  }

  private async guardAll(force: boolean): Promise<void> {
    if (force || this.deps.lockOverridden()) return;
    const { lockedApps } = await scanLocks(this.deps.servicesDir, this.deps.namespace);
    if (lockedApps.size > 0)
      throw new FlotillaError(
        'UPDATE_LOCKED',
        `updates.lock is held by app ${[...lockedApps].join(', ')}; use force to override`,
      );
  }

  /** Power actions run after the answer went out (balena answers 202 first). */
  private later(fn: () => Promise<void>): void {
    setTimeout(() => {
      fn().catch((error: unknown) =>
        this.deps.log.error({ err: (error as Error).message }, 'host power action failed'),
      );
    }, 200).unref();
  }

  private targetApp(appId: number): TargetApp {
    const app = this.deps.view().target?.apps.find((a) => a.appId === appId);
    if (!app) throw new FlotillaError('NOT_FOUND', `app ${appId} is not on this device`);
    return app;
  }

  private async appContainers(appId: number): Promise<CurrentContainer[]> {
    return (await this.deps.engine.snapshot(this.deps.namespace)).containers.filter((c) => c.appId === appId);
  }
}

function signatureOf(svc: TargetService): string {
  return `${svc.commit}:${svc.configHash}`;
}

function findService(target: TargetModel, key: string): TargetService | undefined {
  const slash = key.indexOf('/');
  const appId = Number(key.slice(0, slash));
  const name = key.slice(slash + 1);
  return target.apps.find((a) => a.appId === appId)?.services.find((s) => s.serviceName === name);
}

/** The container that stands for a service: a running one first, then the newest. */
function pick(containers: readonly CurrentContainer[], serviceName: string): CurrentContainer | undefined {
  return containers
    .filter((c) => c.serviceName === serviceName)
    .sort((a, b) => Number(isUp(b)) - Number(isUp(a)) || b.createdAt - a.createdAt)[0];
}

function containerOf(
  containers: readonly CurrentContainer[],
  svc: TargetService,
  current: CurrentState | undefined,
): CurrentContainer | undefined {
  const image = current && findImage(current.images, svc.image);
  const mine = containers.filter((c) => c.appId === svc.appId && c.serviceName === svc.serviceName);
  return (
    pick(image ? mine.filter((c) => c.imageId === image.id && c.configHash === svc.configHash) : [], svc.serviceName) ??
    pick(mine, svc.serviceName)
  );
}

function ipAddresses(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && !i.internal && i.family === 'IPv4')
    .map((i) => i!.address);
}

function macAddress(): string | null {
  return (
    Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && !i.internal && i.mac !== '00:00:00:00:00:00')?.mac ?? null
  );
}
