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
  /** Image id of a local ref, or undefined. */
  imageId(ref: string): Promise<string | undefined>;
  /** What a local image is built for (`architecture` and `variant` as the engine reports them), or undefined. */
  imagePlatform(ref: string): Promise<ImagePlatform | undefined>;
  /** The platform the engine runs containers for, or undefined when it is not one Flotilla knows. */
  platform(): Promise<Platform | undefined>;
}
