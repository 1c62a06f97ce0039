import type Docker from 'dockerode';
import type { UpdateStrategy } from '@flotilla/protocol';

/**
 * The planner's view of the world. Both sides are plain data so `plan()` stays pure: the engine snapshot is
 * turned into `CurrentState` by engine/snapshot code, target state into `TargetModel` by compose/target-model.ts.
 */

/** One container we own, as derived from its labels and the engine's list answer. */
export interface CurrentContainer {
  id: string;
  name: string;
  appId: number;
  appUuid: string;
  serviceName: string;
  releaseCommit: string;
  /** The engine's image id (`sha256:…`) the container runs. */
  imageId: string;
  /** The target state's `image_id` it was created for (its label); what a delta is asked from. */
  targetImageId?: number;
  configHash: string;
  state: 'created' | 'running' | 'restarting' | 'exited' | 'paused' | 'removing' | 'dead' | string;
  /** Creation time, epoch ms; the hand-over timeout counts from the new container's creation. */
  createdAt: number;
  /** Names of the engine networks it is attached to. */
  networks: string[];
  /** Its compose healthcheck's verdict; absent when it has none (reported, so rollouts can wait for `healthy`). */
  health?: 'starting' | 'healthy' | 'unhealthy';
}

export interface CurrentVolume {
  name: string;
  appId: number;
}

export interface CurrentNetwork {
  name: string;
  appId: number;
  /** From the config-hash label; a network whose definition changed is re-created (after its containers go). */
  configHash?: string;
}

/** An image present in the engine (ours or not): what lets the planner decide whether a pull is needed. */
export interface LocalImage {
  id: string;
  repoTags: string[];
  repoDigests: string[];
}

export interface CurrentState {
  containers: CurrentContainer[];
  volumes: CurrentVolume[];
  networks: CurrentNetwork[];
  images: LocalImage[];
  /** Image refs the agent fetched or adopted for some target; only these may be cleaned up. */
  knownImages: string[];
}

export interface TargetService {
  appId: number;
  appUuid: string;
  serviceName: string;
  serviceId: number;
  imageId: number;
  releaseId: number;
  commit: string;
  image: string;
  running: boolean;
  strategy: UpdateStrategy;
  handoverTimeoutMs: number;
  /**
   * A resource only one container can hold at a time (a published host port, a host device, host networking), as
   * text for the logs; undefined when none. With it, hand-over cannot run old and new side by side: the old
   * container is stopped just before the new one starts.
   */
  exclusive?: string;
  dependsOn: string[];
  restart: 'no' | 'always' | 'on-failure' | 'unless-stopped';
  containerName: string;
  /** Hash of everything in `spec` except the image and the release metadata: equal hash = no restart. */
  configHash: string;
  /** Full create options (includes name, image and labels). Networks beyond the first are connected after create. */
  spec: Docker.ContainerCreateOptions;
  /** Engine network names the container must be attached to (empty for network_mode host/none/…). */
  networks: string[];
  /** Extra networks connected after create, with the service name as alias. */
  extraNetworks: string[];
  /** Engine volume names it mounts (must exist before create). */
  volumes: string[];
}

export interface TargetVolumeModel {
  appId: number;
  name: string;
  spec: Docker.VolumeCreateOptions;
}

export interface TargetNetworkModel {
  appId: number;
  name: string;
  configHash: string;
  spec: Docker.NetworkCreateOptions;
}

export interface TargetApp {
  appId: number;
  appUuid: string;
  name: string;
  /** Null when the app is in target without a release: run nothing, keep its volumes. */
  commit: string | null;
  releaseId: number | null;
  services: TargetService[];
  volumes: TargetVolumeModel[];
  networks: TargetNetworkModel[];
}

export interface TargetModel {
  apps: TargetApp[];
}

/** The maintenance window's word on this planning round (window/update-gate.ts). */
export interface WindowVerdict {
  /** False: images may be fetched, but nothing that runs changes (an app being updated waits). */
  mayApply: boolean;
  /** When the window opens next (epoch ms), when it is closed; null: never, or open. */
  opensAt: number | null;
}

/** Facts about the outside the planner may not fetch itself. */
export interface PlanContext {
  now: number;
  /** App ids with an `updates.lock` file held by one of their services. */
  lockedApps: ReadonlySet<number>;
  /** True when config var SUPERVISOR_OVERRIDE_LOCK=1 or an update was forced. */
  overrideLock: boolean;
  /** `<appId>/<serviceName>` whose `/tmp/balena/handover-complete` exists. */
  handoverComplete: ReadonlySet<string>;
  /**
   * `<appId>/<serviceName>` stopped on request (device API `stop-service`): its container is not started, and is
   * stopped if it runs, until the service is started again or a new target arrives for it (the agent prunes it).
   */
  heldStopped: ReadonlySet<string>;
  /** `<appId>/<serviceName>` whose updates.lock the agent itself holds (taken before a kill, released after). */
  agentLocks: ReadonlySet<string>;
  /** Device actions waiting for a pass to carry them out, applied over the target. */
  requests: ActionRequests;
  /**
   * Image refs kept although no container or target uses them: the committed releases' (self-rollback goes back to
   * them, also offline), until a newer release is committed.
   */
  keepImages?: ReadonlySet<string>;
  /** Absent: no maintenance window, updates apply at once. */
  updateWindow?: WindowVerdict;
}

/**
 * What device actions (local API, control plane) ask of the planner: each is a change of the target for the passes
 * that carry it out, so the planner's rules (update locks, dependency order) decide how, as for any update.
 */
export interface ActionRequests {
  /** Apps being purged: planned as if gone from the target (containers, then volumes go; networks stay). */
  purge: ReadonlySet<number>;
  /** `<appId>/<serviceName>` to stop now (the first half of a restart): as if held stopped. */
  stop: ReadonlySet<string>;
  /** `<appId>/<serviceName>` to start even when its restart policy would leave it exited. */
  start: ReadonlySet<string>;
  /** Apps whose update locks the request overrides (`force`). */
  force: ReadonlySet<number>;
}

export const NO_REQUESTS: ActionRequests = { purge: new Set(), stop: new Set(), start: new Set(), force: new Set() };
