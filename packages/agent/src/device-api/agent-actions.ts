import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { FlotillaError, type DeviceLogLine, type TargetDevice } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { HostConfig } from '../host/host-config.js';
import type { HostPower } from '../host/host-power.js';
import { scanLocks } from '../locks/update-locks.js';
import type { DeviceView } from '../reconcile/observed.js';
import type { CurrentContainer, TargetApp, TargetService } from '../reconcile/state.js';
import { updateState } from '../report/device-report.js';
import { appStates, pickContainer as pick } from './app-states.js';
import type { AppStateInfo, DeviceActions, DeviceInfo, ServiceAction } from './device-actions.js';
import type { StopHolds } from './stop-holds.js';

/** What the agent lends the actions: its engine, its view of the world, and its single-flight reconcile runner. */
export interface AgentActionsDeps {
  version: string;
  uuid: string;
  apiPort: number;
  namespace: string;
  servicesDir: string;
  engine: ContainerEngine;
  /** Services stopped on request (persisted, so one stays stopped across an agent restart). */
  holds: StopHolds;
  log: Logger;
  hostConfig: HostConfig;
  hostPower: HostPower;
  developmentMode: () => boolean;
  /** The world as the last planning round saw it. */
  view: () => DeviceView;
  /** Config var BALENA_SUPERVISOR_OVERRIDE_LOCK=1. */
  lockOverridden: () => boolean;
  /** Runs `fn` while no reconcile pass (nor another action) touches the engine. */
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Ask for a reconcile pass soon. */
  wake: () => void;
  healthy: () => boolean;
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
 * A service stopped on request is held (StopHolds) until it is started again or a new target arrives for it.
 */
export class AgentActions implements DeviceActions {
  readonly version: string;

  constructor(private readonly deps: AgentActionsDeps) {
    this.version = deps.version;
  }

  developmentMode(): boolean {
    return this.deps.developmentMode();
  }

  healthy(): boolean {
    return this.deps.healthy();
  }

  applying(): boolean {
    return updateState(this.deps.view()).updatePending;
  }

  triggerUpdate(force: boolean): void {
    this.deps.triggerUpdate(force);
  }

  device(): DeviceInfo {
    const view = this.deps.view();
    const state = updateState(view);
    const apps = this.apps();
    return {
      uuid: this.deps.uuid,
      apiPort: this.deps.apiPort,
      ipAddress: ipAddresses().join(' '),
      macAddress: macAddress(),
      osVersion: `${process.platform} ${process.version}`,
      agentVersion: this.version,
      status: state.status,
      updatePending: state.updatePending,
      updateDownloaded: state.updateDownloaded,
      updateFailed: state.updateFailed,
      downloadProgress: state.downloadProgress,
      commit: apps.find((a) => a.commit !== null)?.commit ?? view.target?.apps[0]?.commit ?? null,
    };
  }

  apps(): AppStateInfo[] {
    return appStates(this.deps.view(), (key) => this.deps.holds.has(key));
  }

  async restartApp(appId: number, force: boolean): Promise<void> {
    await this.deps.exclusive(async () => {
      await this.guard(appId, force);
      const app = this.targetApp(appId);
      const containers = await this.appContainers(appId);
      const order = startOrder(app.services);
      this.deps.holds.release(order.map((svc) => `${appId}/${svc.serviceName}`));
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
      this.deps.holds.release(app.services.map((svc) => `${appId}/${svc.serviceName}`));
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
        this.deps.holds.hold(key, svc);
        this.deps.system(`Stopping service '${serviceName}'`);
        await this.deps.engine.stopContainer(c.id, STOP_SECONDS);
        this.deps.system(`Service stopped '${serviceName}'`);
        return;
      }
      this.deps.holds.release([key]);
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
