import type { Readable } from 'node:stream';
import type { ContainerEngine, EngineSnapshot } from '../engine/container-engine.js';

/**
 * A small in-memory engine for reconcile tests without Docker. Its behaviour is the honest minimum: created
 * containers (always app 7's `web`, config hash `h`, image `sha256:img`) appear in the next snapshot unless `forget`
 * is set (an engine that loses writes → the loop must notice); `onRemove` runs after a container is removed.
 */
export class MemoryEngine implements ContainerEngine {
  state: EngineSnapshot = {
    containers: [],
    volumes: [],
    networks: [{ name: '7_default', appId: 7, configHash: 'n' }],
    images: [{ id: 'sha256:img', repoTags: ['img:1'], repoDigests: [] }],
  };
  forget = false;
  createError: unknown;
  async snapshot(): Promise<EngineSnapshot> {
    return structuredClone(this.state);
  }
  async pull(): Promise<void> {}
  async removeImage(): Promise<void> {}
  async exportImage(): Promise<never> {
    throw new Error('the memory engine holds no image bytes');
  }
  async loadImage(_tar: Readable, _signal: AbortSignal): Promise<void> {
    throw new Error('the memory engine holds no image bytes');
  }
  async imageDiffIds(): Promise<undefined> {
    return undefined;
  }
  async createNetwork(): Promise<void> {}
  async removeNetwork(): Promise<void> {}
  async createVolume(): Promise<void> {}
  async removeVolume(): Promise<void> {}
  async createContainer(spec: { name?: string; Labels?: Record<string, string> }): Promise<string> {
    if (this.createError) throw this.createError;
    const id = `id-${this.state.containers.length}`;
    if (!this.forget) {
      this.state.containers.push({
        id,
        name: spec.name ?? '',
        appId: 7,
        appUuid: 'u',
        serviceName: 'web',
        releaseCommit: 'c',
        imageId: 'sha256:img',
        configHash: 'h',
        state: 'created',
        createdAt: 0,
        networks: ['7_default'],
      });
    }
    return id;
  }
  async startContainer(id: string): Promise<void> {
    const c = this.state.containers.find((x) => x.id === id);
    if (c) c.state = 'running';
  }
  async stopContainer(): Promise<void> {}
  onRemove: (id: string) => void = () => undefined;
  async removeContainer(id: string): Promise<void> {
    this.state.containers = this.state.containers.filter((x) => x.id !== id);
    this.onRemove(id);
  }
  async renameContainer(): Promise<void> {}
  async imagePlatform(): Promise<undefined> {
    return undefined;
  }
  async platform(): Promise<undefined> {
    return undefined;
  }
  async imageId(): Promise<string | undefined> {
    return 'sha256:img';
  }
  async serviceContainer(): Promise<undefined> {
    return undefined;
  }
  async inspectRun(): Promise<undefined> {
    return undefined;
  }
  async lastExitCode(): Promise<undefined> {
    return undefined;
  }
  async tailLogs(): Promise<string[]> {
    return [];
  }
  async exec(): Promise<never> {
    throw new Error('the reconcile loop runs no process in a container');
  }
}
