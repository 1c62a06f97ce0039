import { createRequire } from 'node:module';
import type { Duplex, Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { FlotillaError, LABELS, platformOfEngine, type ImagePlatform, type Platform } from '@flotilla/protocol';
import { NAMESPACE_LABEL } from '../compose/names.js';
import { deltaTag } from '../deltas/delta-tag.js';
import type { CurrentContainer } from '../reconcile/state.js';
import { EngineFrames } from './engine-frames.js';
import type {
  ContainerEngine,
  ContainerRun,
  EngineSnapshot,
  ExecProcess,
  ExecSpec,
  PullProgress,
  RegistryAuth,
  ServiceContainer,
} from './container-engine.js';

/**
 * WARNING: dockerode loads, at require time, modules for features the agent never uses: ssh2 (with a WebAssembly
 * crypto module) for ssh:// engine hosts, and gRPC + protobufjs for BuildKit build sessions. The agent only talks
 * to a local unix socket and never builds, so these are pre-seeded in the require cache with stubs that throw if
 * ever used. This keeps ~20 MB of resident memory off every device. Must run before dockerode is first required.
 */
const UNUSED_BY_AGENT: Array<{ from: 'dockerode' | 'docker-modem'; name: string }> = [
  { from: 'docker-modem', name: 'ssh2' },
  { from: 'dockerode', name: '@grpc/grpc-js' },
  { from: 'dockerode', name: '@grpc/proto-loader' },
  { from: 'dockerode', name: 'protobufjs' },
];

/** The dockerode constructor with the unused modules stubbed; every dockerode client of the agent comes from here. */
export function loadDockerode(): typeof Docker {
  const require = createRequire(import.meta.url);
  const requireFrom = {
    dockerode: createRequire(require.resolve('dockerode')),
    'docker-modem': createRequire(createRequire(require.resolve('dockerode')).resolve('docker-modem')),
  };
  for (const { from, name } of UNUSED_BY_AGENT) {
    let resolved: string;
    try {
      resolved = requireFrom[from].resolve(name);
    } catch {
      continue; // not installed in this layout: nothing to stub
    }
    if (require.cache[resolved]) continue;
    const refuse = (): never => {
      throw new Error(`${name} is not available in flotilla-agent (ssh engine hosts and image builds are unsupported)`);
    };
    const exports = new Proxy({}, { get: (_t, key) => (key === '__esModule' ? false : refuse) });
    // A cache entry only needs `exports` for the CommonJS `require(name)` calls in dockerode/docker-modem.
    require.cache[resolved] = { id: resolved, filename: resolved, loaded: true, exports } as unknown as NodeJS.Module;
  }
  return require('dockerode') as typeof Docker;
}

function statusCode(error: unknown): number | undefined {
  return typeof error === 'object' && error !== null && 'statusCode' in error
    ? Number((error as { statusCode: unknown }).statusCode)
    : undefined;
}

/** Runs `fn`, treating the listed engine status codes as success (the thing is already in the wanted state). */
async function tolerate(codes: number[], fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (!codes.includes(statusCode(error) ?? -1)) throw error;
  }
}

interface LayerProgress {
  current: number;
  total: number;
}

/**
 * The healthcheck verdict in the engine's container list status, which is all the list says of it:
 * "Up 2 minutes (healthy)", "Up 3 seconds (health: starting)", "Up 1 minute (unhealthy)"; nothing without a healthcheck.
 */
export function healthOf(status: string | undefined): { health?: 'starting' | 'healthy' | 'unhealthy' } {
  const verdict = /\((healthy|unhealthy|health: starting)\)$/.exec(status?.trim() ?? '')?.[1];
  if (verdict === undefined) return {};
  return { health: verdict === 'health: starting' ? 'starting' : (verdict as 'healthy' | 'unhealthy') };
}

export class DockerEngine implements ContainerEngine {
  private readonly docker: Docker;

  constructor(socketPath = '/var/run/docker.sock') {
    const DockerClient = loadDockerode();
    this.docker = new DockerClient({ socketPath });
  }

  private ours(namespace: string, labels: Record<string, string> | undefined | null): boolean {
    if (labels?.[LABELS.supervised] !== '1') return false;
    return (labels[NAMESPACE_LABEL] ?? '') === namespace;
  }

  async snapshot(namespace: string, signal?: AbortSignal): Promise<EngineSnapshot> {
    const filter = JSON.stringify({ label: [`${LABELS.supervised}=1`] });
    const opts = signal ? { abortSignal: signal } : {};
    const [containers, volumes, networks, images] = await Promise.all([
      this.docker.listContainers({ all: true, filters: filter, ...opts }),
      this.docker.listVolumes({ filters: filter, ...opts }),
      this.docker.listNetworks({ filters: filter, ...opts }),
      this.docker.listImages({ ...opts }),
    ]);
    const current: CurrentContainer[] = [];
    for (const c of containers) {
      if (!this.ours(namespace, c.Labels)) continue;
      const labels = c.Labels;
      current.push({
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        appId: Number(labels[LABELS.appId]),
        appUuid: labels[LABELS.appUuid] ?? '',
        serviceName: labels[LABELS.serviceName] ?? '',
        releaseCommit: labels[LABELS.releaseCommit] ?? '',
        imageId: c.ImageID,
        ...(Number(labels[LABELS.imageId]) > 0 ? { targetImageId: Number(labels[LABELS.imageId]) } : {}),
        configHash: labels[LABELS.configHash] ?? '',
        state: c.State,
        createdAt: c.Created * 1000,
        networks: Object.keys(c.NetworkSettings?.Networks ?? {}),
        ...healthOf(c.Status),
      });
    }
    return {
      containers: current,
      volumes: (volumes.Volumes ?? [])
        .filter((v) => this.ours(namespace, v.Labels))
        .map((v) => ({ name: v.Name, appId: Number(v.Labels[LABELS.appId]) })),
      networks: networks
        .filter((n) => this.ours(namespace, n.Labels))
        .map((n) => ({
          name: n.Name,
          appId: Number(n.Labels?.[LABELS.appId]),
          configHash: n.Labels?.[LABELS.configHash] ?? '',
        })),
      images: images.map((i) => ({ id: i.Id, repoTags: i.RepoTags ?? [], repoDigests: i.RepoDigests ?? [] })),
    };
  }

  async pull(
    ref: string,
    auth: RegistryAuth | undefined,
    onProgress: (p: PullProgress) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const stream = (await this.docker.pull(ref, {
      ...(auth ? { authconfig: auth } : {}),
      abortSignal: signal,
    })) as NodeJS.ReadableStream;
    const layers = new Map<string, LayerProgress>();
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: {
          id?: string;
          status?: string;
          error?: string;
          progressDetail?: { current?: number; total?: number };
        }) => {
          if (event.error) return reject(new Error(event.error));
          if (!event.id) return;
          const layer = layers.get(event.id) ?? { current: 0, total: 0 };
          if (event.status === 'Downloading' && event.progressDetail?.total) {
            layer.current = event.progressDetail.current ?? 0;
            layer.total = event.progressDetail.total;
          } else if (
            event.status === 'Download complete' ||
            event.status === 'Pull complete' ||
            event.status === 'Already exists'
          ) {
            layer.current = layer.total = Math.max(layer.total, 1);
          }
          layers.set(event.id, layer);
          let current = 0;
          let total = 0;
          for (const l of layers.values()) {
            current += l.current;
            total += l.total;
          }
          if (total > 0) onProgress({ percent: Math.min(100, Math.floor((100 * current) / total)) });
        },
      );
    });
  }

  async exportImage(ref: string, signal: AbortSignal): Promise<Readable> {
    const stream = (await this.docker.getImage(ref).get()) as Readable;
    signal.addEventListener('abort', () => stream.destroy(signal.reason as Error), { once: true });
    return stream;
  }

  async loadImage(tar: Readable, signal: AbortSignal): Promise<void> {
    const answer = (await this.docker.loadImage(tar, { quiet: true, abortSignal: signal })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(answer, (error: Error | null, events: Array<{ error?: string }>) => {
        const failed = error ?? events.find((e) => e.error);
        if (failed) reject(failed instanceof Error ? failed : new Error(failed.error));
        else resolve();
      });
    });
  }

  async removeImage(ref: string): Promise<void> {
    // 404: already gone. 409 (in use by some container) is a real refusal and surfaces.
    await tolerate([404], () => this.docker.getImage(ref).remove({ noprune: false }));
    const loaded = deltaTag(ref);
    if (loaded) await tolerate([404], () => this.docker.getImage(loaded).remove({ noprune: false }));
  }

  async createNetwork(spec: Docker.NetworkCreateOptions): Promise<void> {
    await tolerate([409], () => this.docker.createNetwork({ ...spec, CheckDuplicate: true }));
  }

  async removeNetwork(name: string): Promise<void> {
    await tolerate([404], () => this.docker.getNetwork(name).remove());
  }

  async createVolume(spec: Docker.VolumeCreateOptions): Promise<void> {
    await this.docker.createVolume(spec);
  }

  async removeVolume(name: string): Promise<void> {
    await tolerate([404], () => this.docker.getVolume(name).remove());
  }

  async createContainer(
    spec: Docker.ContainerCreateOptions,
    extraNetworks: Array<{ network: string; aliases: string[] }>,
  ): Promise<string> {
    const container = await this.docker.createContainer(
      spec.Image ? { ...spec, Image: await this.localRef(spec.Image) } : spec,
    );
    for (const n of extraNetworks) {
      await this.docker
        .getNetwork(n.network)
        .connect({ Container: container.id, EndpointConfig: { Aliases: n.aliases } });
    }
    return container.id;
  }

  async startContainer(id: string): Promise<void> {
    await tolerate([304], () => this.docker.getContainer(id).start());
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    await tolerate([304, 404], () => this.docker.getContainer(id).stop({ t: timeoutSeconds }));
  }

  async removeContainer(id: string): Promise<void> {
    await tolerate([404], () => this.docker.getContainer(id).remove({ force: true, v: false }));
  }

  async renameContainer(id: string, name: string): Promise<void> {
    await this.docker.getContainer(id).rename({ name });
  }

  /** `ref` itself, or its delta tag when only an image rebuilt from a delta stands for it (deltas/delta-tag.ts). */
  private async localRef(ref: string): Promise<string> {
    const loaded = deltaTag(ref);
    if (!loaded) return ref;
    const present = async (r: string) =>
      this.docker
        .getImage(r)
        .inspect()
        .then(
          () => true,
          (error: unknown) => {
            if (statusCode(error) === 404) return false;
            throw error;
          },
        );
    return (await present(ref)) || !(await present(loaded)) ? ref : loaded;
  }

  async imageId(ref: string): Promise<string | undefined> {
    try {
      return (await this.docker.getImage(await this.localRef(ref)).inspect()).Id;
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async imageDiffIds(ref: string): Promise<string[] | undefined> {
    try {
      return (await this.docker.getImage(await this.localRef(ref)).inspect()).RootFS?.Layers ?? [];
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async imagePlatform(ref: string): Promise<ImagePlatform | undefined> {
    try {
      // Variant is in the engine's answer since API 1.40; dockerode's types predate it.
      const info = (await this.docker.getImage(await this.localRef(ref)).inspect()) as Docker.ImageInspectInfo & {
        Variant?: string;
      };
      return { os: info.Os, architecture: info.Architecture, variant: info.Variant || undefined };
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  /** The engine does not change architecture while the agent runs: asked once. */
  private enginePlatform: Promise<Platform | undefined> | undefined;

  platform(): Promise<Platform | undefined> {
    this.enginePlatform ??= Promise.all([
      this.docker.version(),
      this.docker.info() as Promise<{ Architecture?: string }>,
    ]).then(
      ([version, info]) => platformOfEngine(version.Arch, info.Architecture),
      (error: unknown) => {
        this.enginePlatform = undefined;
        throw error;
      },
    );
    return this.enginePlatform;
  }

  async serviceContainer(
    namespace: string,
    service: string,
    appId: number | undefined,
  ): Promise<ServiceContainer | undefined> {
    const label = [`${LABELS.supervised}=1`, `${LABELS.serviceName}=${service}`];
    if (appId !== undefined) label.push(`${LABELS.appId}=${appId}`);
    const running = await this.docker.listContainers({ filters: JSON.stringify({ label, status: ['running'] }) });
    const [c] = running.filter((x) => this.ours(namespace, x.Labels)).sort((a, b) => b.Created - a.Created);
    if (!c) return undefined;
    const mode = c.HostConfig?.NetworkMode ?? '';
    if (mode === 'host') return { id: c.Id, address: '127.0.0.1' };
    // The container's own network (NetworkMode names it) first; any other it is attached to otherwise.
    const networks = c.NetworkSettings?.Networks ?? {};
    const address = networks[mode]?.IPAddress || Object.values(networks).find((n) => n.IPAddress)?.IPAddress;
    return { id: c.Id, address: address || undefined };
  }

  async inspectRun(id: string): Promise<ContainerRun | undefined> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const health = info.State.Health?.Status;
      return {
        state: info.State.Status,
        restartCount: info.RestartCount,
        exitCode: info.State.ExitCode,
        startedAt: info.State.StartedAt.startsWith('0001-') ? '' : info.State.StartedAt,
        health: health === 'starting' || health === 'healthy' || health === 'unhealthy' ? health : undefined,
      };
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }

  async lastExitCode(id: string, sinceMs: number): Promise<number | undefined> {
    // Past events only (`until` is now): the engine answers with what it logged and ends the stream.
    const now = Date.now();
    const stream = (await this.docker.getEvents({
      since: Math.floor(Math.min(sinceMs, now) / 1000),
      until: now / 1000,
      filters: { container: [id], event: ['die'] },
    } as never)) as unknown as Readable;
    let text = '';
    for await (const chunk of stream) text += String(chunk);
    let code: number | undefined;
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const event = JSON.parse(line) as { Actor?: { Attributes?: { exitCode?: string } } };
      const value = Number(event.Actor?.Attributes?.exitCode);
      if (Number.isInteger(value)) code = value;
    }
    return code;
  }

  async tailLogs(id: string, lines: number): Promise<string[]> {
    let raw: Buffer;
    try {
      const container = this.docker.getContainer(id);
      const tty = (await container.inspect()).Config.Tty;
      raw = (await container.logs({ stdout: true, stderr: true, tail: lines, follow: false })) as Buffer;
      if (!tty) {
        const parts: Buffer[] = [];
        new EngineFrames((_output, data) => parts.push(Buffer.from(data))).write(raw);
        raw = Buffer.concat(parts);
      }
    } catch (error) {
      if (statusCode(error) === 404) return [];
      throw error;
    }
    return raw
      .toString('utf8')
      .split(/\r?\n/)
      .filter((line) => line !== '')
      .slice(-lines);
  }

  async exec(containerId: string, spec: ExecSpec): Promise<ExecProcess> {
    let exec: Docker.Exec;
    try {
      exec = await this.docker.getContainer(containerId).exec({
        Cmd: spec.cmd,
        Tty: spec.tty,
        Env: spec.env,
        AttachStdin: true,
        AttachStdout: true,
        AttachStderr: true,
      });
    } catch (error) {
      const code = statusCode(error);
      if (code === 404 || code === 409) throw new FlotillaError('SERVICE_NOT_FOUND', 'the container is not running');
      throw error;
    }
    // The hijacked connection: the engine's socket itself (stdin in, output out), so end() closes stdin.
    const stream = (await exec.start({ hijack: true, stdin: true, Tty: spec.tty })) as Duplex;
    return {
      stream,
      resize: async (cols, rows) => {
        await exec.resize({ w: cols, h: rows });
      },
      exitCode: async () => {
        // The engine may still say Running for a moment after it closed the stream.
        for (let attempt = 0; attempt < 50; attempt++) {
          const info = await exec.inspect();
          if (!info.Running && info.ExitCode !== null) return info.ExitCode;
          await sleep(100);
        }
        throw new FlotillaError('ENGINE_ERROR', 'the engine did not report the exit status of the process');
      },
    };
  }
}
