import type { Duplex, Readable } from 'node:stream';
import type Docker from 'dockerode';
import type { ImagePlatform, Platform } from '@flotilla/protocol';
import type { CurrentContainer, CurrentNetwork, CurrentVolume, LocalImage } from '../reconcile/state.js';

/** Everything the agent owns in the engine (filtered by our labels and namespace), plus all local images. */
export interface EngineSnapshot {
  containers: CurrentContainer[];
  volumes: CurrentVolume[];
  networks: CurrentNetwork[];
  images: LocalImage[];
}

export interface PullProgress {
  /** 0–100 over all layers whose size is known. */
  percent: number;
}

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

/** A service's running container, as remote access reaches it. */
export interface ServiceContainer {
  id: string;
  /** The IPv4 address the device's host reaches it at: 127.0.0.1 with host networking; undefined when none. */
  address: string | undefined;
}

/** A process to start in a running container (engine exec). */
export interface ExecSpec {
  cmd: string[];
  /** A pseudo-terminal: output is the terminal's bytes; without one, stdout and stderr come multiplexed. */
  tty: boolean;
  /** `NAME=value` entries added to the container's environment. */
  env: string[];
}

/** A process started in a container, with its stdin and output on one connection to the engine. */
export interface ExecProcess {
  /**
   * Write stdin here; end() closes it (the process reads EOF). Reads are the terminal's bytes with a TTY, else the
   * engine's multiplexed frames (engine-frames.ts). Closes when the process has ended and its output is read.
   */
  stream: Duplex;
  resize(cols: number, rows: number): Promise<void>;
  /** The exit status, once the stream has ended. */
  exitCode(): Promise<number>;
}

/** How a container has fared since it was created: what self-rollback judges a new release by. */
export interface ContainerRun {
  state: string;
  /** Restarts the engine's restart policy made (a crash loop, or `on-failure` exits). */
  restartCount: number;
  exitCode: number;
  /** When it last started (the engine's text); '' when it never did. Changes with every start, by hand or policy. */
  startedAt: string;
  /** The compose healthcheck's verdict; undefined when the container has none. */
  health: 'starting' | 'healthy' | 'unhealthy' | undefined;
}

/**
 * The narrow surface of the container engine the agent needs. The Docker implementation is engine/docker-engine.ts;
 * every method is idempotent where the engine allows it (removing something already gone succeeds).
 */
export interface ContainerEngine {
  snapshot(namespace: string, signal?: AbortSignal): Promise<EngineSnapshot>;
  pull(
    ref: string,
    auth: RegistryAuth | undefined,
    onProgress: (p: PullProgress) => void,
    signal: AbortSignal,
  ): Promise<void>;
  removeImage(ref: string): Promise<void>;
  /** `docker save` of one image: a tar of its config, manifest.json and uncompressed layers (deltas' sources). */
  exportImage(ref: string, signal: AbortSignal): Promise<Readable>;
  /** `docker load` of a tar in `docker save` format; layers whose chain the engine has may be left out of it. */
  loadImage(tar: Readable, signal: AbortSignal): Promise<void>;
  createNetwork(spec: Docker.NetworkCreateOptions): Promise<void>;
  removeNetwork(name: string): Promise<void>;
  createVolume(spec: Docker.VolumeCreateOptions): Promise<void>;
  removeVolume(name: string): Promise<void>;
  /** Creates the container and connects `extraNetworks` (engine API 1.41 takes one network at create). */
  createContainer(
    spec: Docker.ContainerCreateOptions,
    extraNetworks: Array<{ network: string; aliases: string[] }>,
  ): Promise<string>;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  removeContainer(id: string): Promise<void>;
  renameContainer(id: string, name: string): Promise<void>;
  /** The diffIDs of a local image's layers (its rootfs chain), or undefined when it is not local. */
  imageDiffIds(ref: string): Promise<string[] | undefined>;
  /** Image id of a local ref, or undefined. */
  imageId(ref: string): Promise<string | undefined>;
  /** What a local image is built for (`architecture` and `variant` as the engine reports them), or undefined. */
  imagePlatform(ref: string): Promise<ImagePlatform | undefined>;
  /** The platform the engine runs containers for, or undefined when it is not one Flotilla knows. */
  platform(): Promise<Platform | undefined>;
  /**
   * The running container of `service` (of app `appId` when given) among ours; the newest when a hand-over runs two.
   */
  serviceContainer(
    namespace: string,
    service: string,
    appId: number | undefined,
  ): Promise<ServiceContainer | undefined>;
  /** Restart count, exit code and health of a container; undefined when it is gone. */
  inspectRun(id: string): Promise<ContainerRun | undefined>;
  /**
   * The exit code of the container's last exit since `sinceMs` (epoch ms), from the engine's event log; undefined when
   * it did not exit since. `inspectRun` cannot tell: the engine clears the exit code when its policy starts it again.
   */
  lastExitCode(id: string, sinceMs: number): Promise<number | undefined>;
  /** The container's last `lines` lines of output (stdout and stderr), oldest first; [] when it is gone. */
  tailLogs(id: string, lines: number): Promise<string[]>;
  /** Starts a process in a running container (remote shells). */
  exec(containerId: string, spec: ExecSpec): Promise<ExecProcess>;
}
