import type { TargetNetworkModel, TargetService, TargetVolumeModel } from './state.js';

/**
 * Every action the executor knows, with its arguments. INVARIANT: this map is the single source of the step
 * union and of the executor table's keys, so adding an action here without an executor fails to compile.
 */
export interface StepArgs {
  fetch: { image: string; appId: number; serviceName: string };
  removeImage: { image: string };
  createNetwork: { network: TargetNetworkModel };
  removeNetwork: { name: string };
  createVolume: { volume: TargetVolumeModel };
  removeVolume: { name: string };
  createContainer: { service: TargetService };
  startContainer: { containerId: string; serviceName: string; appId: number };
  stopContainer: { containerId: string; serviceName: string; appId: number };
  /** Stop (gracefully) and remove. */
  killContainer: { containerId: string; serviceName: string; appId: number; reason: string };
  /** Same config, new release: rename only, never a restart. */
  updateMetadata: { containerId: string; name: string };
  /**
   * The agent takes the app's update lock (creates updates.lock in each service's folder) before it kills or stops
   * any of them, so no service can take the lock between the scan and the kill. Planned before the first kill/stop.
   */
  takeLock: { appId: number; services: string[] };
  /** The app has nothing left to kill or stop: the agent lets go of the lock it took. */
  releaseLock: { appId: number; services: string[] };
  /**
   * Nothing to do yet, but not converged: the pass ends with retry-after. Never executed. `lock`: the wait is for
   * an update lock a service holds (what device actions answer 423 for). `window`: for the maintenance window.
   */
  wait: { reason: string; retryAfterMs: number; appId?: number; lock?: boolean; window?: boolean };
}

export type Action = keyof StepArgs;
export type Step = { [K in Action]: { action: K } & StepArgs[K] }[Action];
export type StepOf<K extends Action> = Extract<Step, { action: K }>;

/** The executor table: one async function per action, typed from the same map. */
export type Executors = { [K in Exclude<Action, 'wait'>]: (step: StepOf<K>, signal: AbortSignal) => Promise<void> };

export function step<K extends Action>(action: K, args: StepArgs[K]): StepOf<K> {
  // The spread is exactly StepOf<K>; TypeScript cannot see through the distributive Extract.
  return { action, ...args } as unknown as StepOf<K>;
}

/** The app a step works on, when it is about one app. */
export function stepAppId(s: Step): number | undefined {
  switch (s.action) {
    case 'fetch':
    case 'startContainer':
    case 'stopContainer':
    case 'killContainer':
    case 'takeLock':
    case 'releaseLock':
    case 'wait':
      return s.appId;
    case 'createContainer':
      return s.service.appId;
    case 'createNetwork':
      return s.network.appId;
    case 'createVolume':
      return s.volume.appId;
    default:
      return undefined;
  }
}

/** A short human form for logs and loop detection. */
export function describeStep(s: Step): string {
  switch (s.action) {
    case 'fetch':
      return `fetch ${s.image}`;
    case 'removeImage':
      return `removeImage ${s.image}`;
    case 'createNetwork':
      return `createNetwork ${s.network.name}`;
    case 'removeNetwork':
      return `removeNetwork ${s.name}`;
    case 'createVolume':
      return `createVolume ${s.volume.name}`;
    case 'removeVolume':
      return `removeVolume ${s.name}`;
    case 'createContainer':
      return `createContainer ${s.service.containerName}`;
    case 'startContainer':
      return `startContainer ${s.appId}/${s.serviceName} ${s.containerId.slice(0, 12)}`;
    case 'stopContainer':
      return `stopContainer ${s.appId}/${s.serviceName} ${s.containerId.slice(0, 12)}`;
    case 'killContainer':
      return `killContainer ${s.appId}/${s.serviceName} ${s.containerId.slice(0, 12)} (${s.reason})`;
    case 'updateMetadata':
      return `updateMetadata ${s.containerId.slice(0, 12)} → ${s.name}`;
    case 'takeLock':
      return `takeLock ${s.appId} ${s.services.join(',')}`;
    case 'releaseLock':
      return `releaseLock ${s.appId} ${s.services.join(',')}`;
    case 'wait':
      return `wait ${s.reason}`;
  }
}
