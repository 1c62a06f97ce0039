import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import { FlotillaError, type DeviceLogLine, type TargetDevice } from '@flotilla/protocol';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { HostConfig } from '../host/host-config.js';
import type { HostPower } from '../host/host-power.js';
import { scanLocks } from '../locks/update-locks.js';
import type { DeviceView } from '../reconcile/observed.js';
import type { PassResult } from '../reconcile/loop.js';
import type { ActionRequests, CurrentContainer, TargetApp } from '../reconcile/state.js';
import { updateState } from '../report/device-report.js';
import { appStates, pickContainer as pick } from './app-states.js';
import type { AppStateInfo, DeviceActions, DeviceInfo, ServiceAction } from './device-actions.js';
import type { PendingRequests } from './pending-requests.js';
import type { StopHolds } from './stop-holds.js';

/** What the agent lends the actions: its view of the world, the planner's inputs, and its reconcile passes. */
export interface AgentActionsDeps {
  version: string;
  uuid: string;
  apiPort: number;
  namespace: string;
  servicesDir: string;
  /** Read only: an action on a service without a container is refused. Changes go through the planner. */
  engine: Pick<ContainerEngine, 'snapshot'>;
  /** Services stopped on request (persisted, so one stays stopped across an agent restart). */
  holds: StopHolds;
  /** Where an action hands the planner what it asks for (restart, purge, start/stop of a service). */
  requests: PendingRequests;
  /** Runs one reconcile pass (after the one in flight) and returns its result. */
  pass: () => Promise<PassResult>;
  log: Logger;
  hostConfig: HostConfig;
  hostPower: HostPower;
  developmentMode: () => boolean;
  /** The world as the last planning round saw it. */
  view: () => DeviceView;
  /** Config var BALENA_SUPERVISOR_OVERRIDE_LOCK=1. */
  lockOverridden: () => boolean;
  /** Ask for a reconcile pass soon. */
  wake: () => void;
  healthy: () => boolean;
  triggerUpdate: (force: boolean) => void;
  localTarget: () => TargetDevice | undefined;
  setLocalTarget: (device: TargetDevice) => void;
  system: (message: string) => void;
  subscribeLogs: (listener: (line: DeviceLogLine) => void) => () => void;
}

/**
 * DeviceActions for the real agent: what the local API and the control plane's actions ask of the device. Actions
 * that change containers do not touch the engine themselves: each becomes an input of the planner
 * (PlanContext.requests, or a stop-hold) and waits for the pass that carries it out, so one set of rules (update
 * locks, dependency order) decides for updates and actions alike. A service stopped on request is held (StopHolds)
 * until it is started again or a new target arrives for it.
 */
export class AgentActions implements DeviceActions {
  readonly version: string;
  private queue: Promise<unknown> = Promise.resolve();

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
    await this.serial(async () => {
      const app = this.targetApp(appId);
      const keys = app.services.map((svc) => `${appId}/${svc.serviceName}`);
      this.deps.system(`Restarting app ${app.name}`);
      // The planner stops dependents first and starts dependencies first, as for any update.
      await this.carryOut(appId, { stop: new Set(keys) }, force);
      this.deps.holds.release(keys);
      await this.carryOut(appId, { start: new Set(keys) }, force);
      this.deps.system(`Restarted app ${app.name}`);
    });
    this.deps.wake();
  }

  async purgeApp(appId: number, force: boolean): Promise<void> {
    await this.serial(async () => {
      const app = this.targetApp(appId);
      this.deps.system(`Purging data for app ${app.name}`);
      await this.carryOut(appId, { purge: new Set([appId]) }, force);
      this.deps.holds.release(app.services.map((svc) => `${appId}/${svc.serviceName}`));
      this.deps.system(`Purged data for app ${app.name}`);
    });
    // The reconciler re-creates the volumes (empty) and the containers.
    this.deps.wake();
  }

  async serviceAction(action: ServiceAction, appId: number, serviceName: string, force: boolean): Promise<void> {
    await this.serial(async () => {
      const svc = this.targetApp(appId).services.find((s) => s.serviceName === serviceName);
      if (!svc) throw new FlotillaError('SERVICE_NOT_FOUND', `app ${appId} has no service ${serviceName}`);
      if (!pick(await this.appContainers(appId), serviceName))
        throw new FlotillaError('SERVICE_NOT_FOUND', `service ${serviceName} of app ${appId} has no container yet`);
      const key = `${appId}/${serviceName}`;
      if (action === 'stop') {
        // INVARIANT: the hold is persisted before the pass that stops the container (a crash must not undo it).
        const wasHeld = this.deps.holds.has(key);
        this.deps.holds.hold(key, svc);
        try {
          await this.carryOut(appId, {}, force);
        } catch (error) {
          if (!wasHeld) this.deps.holds.release([key]);
          throw error;
        }
        return;
      }
      if (action === 'restart') {
        this.deps.system(`Restarting service '${serviceName}'`);
        await this.carryOut(appId, { stop: new Set([key]) }, force);
      }
      this.deps.holds.release([key]);
      await this.carryOut(appId, { start: new Set([key]) }, force);
      if (action === 'restart') this.deps.system(`Service restarted '${serviceName}'`);
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
  /**
   * Runs device actions one at a time. Not under the engine's single flight: each action runs passes, which take
   * it themselves.
   */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Hands `request` to the planner and waits for the pass that carries it out (the next one, after any in flight).
   * INVARIANT: nothing of a locked app is stopped or removed on request unless forced (or overridden by config):
   * the planner waits instead of killing, and the action answers UPDATE_LOCKED; starts kill nothing, so a lock
   * held elsewhere in the app does not refuse them.
   */
  private async carryOut(appId: number, request: Partial<ActionRequests>, force: boolean): Promise<void> {
    this.deps.requests.set(force ? { ...request, force: new Set([appId]) } : request);
    let result: PassResult;
    try {
      result = await this.deps.pass();
    } finally {
      this.deps.requests.clear();
    }
    const { outcome } = result;
    const startsOnly = request.start !== undefined;
    if (outcome.kind === 'retry-after' && outcome.lockedApps.includes(appId) && !startsOnly) {
      this.deps.system('Update lock held, action refused');
      throw new FlotillaError(
        'UPDATE_LOCKED',
        `updates.lock is held by a service of app ${appId}; use force to override`,
      );
    }
    if (outcome.kind === 'error') throw outcome.error;
    if (outcome.kind === 'cancelled') throw new Error('the agent is stopping');
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
