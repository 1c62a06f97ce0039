import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import { pack } from 'tar-stream';
import { deltaTag } from '../deltas/delta-tag.js';
import { type LayerCache, roomFor } from '../deltas/layer-cache.js';
import type { ContainerEngine, RegistryAuth } from '../engine/container-engine.js';
import { PRIVATE_DIR_MODE } from '../store/private-files.js';
import { downloadResuming } from '../util/resumable-download.js';
import { type ImageManifest, RegistryClient, parseDigestRef } from './registry-client.js';

/** Layer files nobody finished for this long (their image left the target) are removed by the next pull. */
const STALE_LAYER_MS = 7 * 24 * 3600 * 1000;

export interface ResumablePullOptions {
  engine: ContainerEngine;
  log: Logger;
  /** The agent's data folder; layers download into `<dataDir>/layers/`, so a restart resumes them. */
  dataDir: string;
  namespace: string;
  /** Credentials for a reference on the control plane's registry; undefined: not ours, the engine pulls it. */
  registryAuth: (ref: string) => RegistryAuth | undefined;
  /** `http(s)://host` of the registry at `host`. */
  registryBase: (host: string) => URL;
  /** Download attempts per layer (each resumes where the previous stopped) before the pass fails. Default 5. */
  downloadAttempts?: number;
  /** Roots to verify an https:// registry with besides the public ones (util/trust.ts); absent: Node's roots. */
  ca?: string[] | undefined;
  /** Gzip layer blobs go here once loaded (the next delta's base layers), instead of being removed. */
  cache?: LayerCache | undefined;
}

type Layer = ImageManifest['layers'][number];

const hexOf = (digest: string) => digest.slice('sha256:'.length);

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

async function sizeOf(file: string): Promise<number | undefined> {
  return (await stat(file).catch(() => undefined))?.size;
}

/** How many leading layers two images share (their layer chains are equal up to there). */
function sharedPrefix(a: readonly string[], b: readonly string[]): number {
  let shared = 0;
  while (shared < a.length && shared < b.length && a[shared] === b[shared]) shared += 1;
  return shared;
}

/**
 * Pulls an image of Flotilla's registry itself instead of through the engine, so every byte survives a cut link
 * or an agent restart: the engine's pull starts every layer again from zero (balena-supervisor#1575). The manifest
 * and config are checked against their digests, each missing layer blob downloads with Range into the data folder
 * and is checked against its digest, and the image is then `docker load`ed under its delta tag (deltas/delta-tag.ts),
 * which the planner takes for the digest reference, once its ID is the manifest's config digest.
 * INVARIANT: pulls run one at a time, so two never write or remove the same layer file.
 */
export class ResumablePull {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: ResumablePullOptions) {}

  private get dir(): string {
    return join(this.options.dataDir, 'layers');
  }

  /**
   * True once the image is loaded; false when it is not one to pull here (not a digest reference on our registry)
   * or when this pull failed for a reason other than a cut link or a full disk (logged: the engine pulls it then).
   * A cut link that outlasts the retries throws NETWORK_ERROR: the pass fails, and the next one resumes.
   */
  async pull(ref: string, signal: AbortSignal, onProgress?: (percent: number) => void): Promise<boolean> {
    const parsed = parseDigestRef(ref);
    const auth = this.options.registryAuth(ref);
    const tag = deltaTag(ref);
    if (!parsed || !auth || !tag) return false;
    const client = new RegistryClient(this.options.registryBase(parsed.host), parsed.repository, auth, this.options.ca);
    const run = this.queue.then(() => this.run(ref, parsed.digest, client, tag, signal, onProgress));
    this.queue = run.catch(() => undefined);
    try {
      await run;
      return true;
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof FlotillaError && (error.code === 'NETWORK_ERROR' || error.code === 'INSUFFICIENT_DISK'))
        throw error;
      const reason = error instanceof Error ? error.message : String(error);
      this.options.log.warn({ image: ref, reason }, 'agent-side pull failed; the engine pulls the image instead');
      return false;
    }
  }

  /** The layers (diffIDs, in order) of the image `ref` names, read from its config in the registry. */
  async diffIds(ref: string, signal: AbortSignal): Promise<string[]> {
    const parsed = parseDigestRef(ref);
    const auth = this.options.registryAuth(ref);
    if (!parsed || !auth) throw new FlotillaError('IMAGE_NOT_FOUND', `${ref} is not an image of the control plane`);
    const client = new RegistryClient(this.options.registryBase(parsed.host), parsed.repository, auth, this.options.ca);
    return (await client.image(parsed.digest, signal)).diffIds;
  }

  private async run(
    ref: string,
    digest: string,
    client: RegistryClient,
    tag: string,
    signal: AbortSignal,
    onProgress: ((percent: number) => void) | undefined,
  ): Promise<void> {
    const { log, engine } = this.options;
    const { manifest, config, diffIds } = await client.image(digest, signal);
    const shared = await this.localChain(diffIds, signal);
    const needed = [...new Map(manifest.layers.slice(shared).map((l) => [l.digest, l])).values()];
    await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    await this.removeStale(new Set(needed.map((l) => l.digest)));
    await this.ensureSpace(needed, ref);
    const total = needed.reduce((sum, l) => sum + l.size, 0);
    const onDisk = new Map<string, number>();
    let percent = -1;
    const progress = () => {
      let bytes = 0;
      for (const n of onDisk.values()) bytes += n;
      const now = total === 0 ? 100 : Math.floor((100 * bytes) / total);
      if (now !== percent) onProgress?.((percent = now));
    };
    let downloaded = 0;
    for (const layer of needed) {
      signal.throwIfAborted();
      const done = this.layerFile(layer);
      const doneSize = await sizeOf(done);
      if (doneSize === layer.size) {
        onDisk.set(layer.digest, layer.size);
        progress();
        continue;
      }
      downloaded += await this.download(client, layer, signal, (bytes) => {
        onDisk.set(layer.digest, bytes);
        progress();
      });
      await rename(`${done}.part`, done);
    }
    progress();
    await this.load(manifest, config, diffIds, shared, tag, signal);
    const loaded = await engine.imageId(tag);
    if (loaded !== manifest.config.digest) {
      await engine.removeImage(tag).catch(() => undefined);
      await Promise.all(needed.map((l) => rm(this.layerFile(l), { force: true })));
      throw new FlotillaError(
        'IMAGE_INVALID',
        `the loaded image is ${loaded ?? 'missing'}, not ${manifest.config.digest}`,
      );
    }
    await this.keep(manifest, diffIds, shared);
    log.info(
      { image: ref, layers: manifest.layers.length, local: shared, bytes: total, downloadedNow: downloaded },
      'image pulled by the agent',
    );
  }

  /** Moves the loaded image's gzip blobs into the layer cache by diffID; the rest of its blobs are removed. */
  private async keep(manifest: ImageManifest, diffIds: readonly string[], shared: number): Promise<void> {
    for (let i = shared; i < manifest.layers.length; i += 1) {
      const layer = manifest.layers[i]!;
      const file = this.layerFile(layer);
      if (this.options.cache && layer.mediaType.endsWith('gzip') && diffIds[i])
        await this.options.cache.store(diffIds[i]!, file).catch(() => undefined);
      await rm(file, { force: true });
    }
  }

  private layerFile(layer: Layer): string {
    return join(this.dir, hexOf(layer.digest));
  }

  /** Downloads one blob into `<hex>.part` (resuming) and checks its digest; a mismatch removes it. */
  private async download(
    client: RegistryClient,
    layer: Layer,
    signal: AbortSignal,
    onBytes: (bytes: number) => void,
  ): Promise<number> {
    const part = `${this.layerFile(layer)}.part`;
    const received = await downloadResuming(
      {
        url: client.blobUrl(layer.digest),
        headers: () => client.headers(signal),
        file: part,
        size: layer.size,
        what: `layer ${layer.digest} download`,
        failure: (status) =>
          new FlotillaError('UNEXPECTED_RESPONSE', `the registry answered HTTP ${status} for layer ${layer.digest}`),
        onBytes,
        signal,
        ca: this.options.ca,
      },
      this.options.downloadAttempts ?? 5,
      this.options.log,
    );
    const actual = await sha256File(part);
    if (actual !== layer.digest) {
      await rm(part, { force: true });
      throw new FlotillaError('IMAGE_INVALID', `downloaded layer is ${actual}, not ${layer.digest}`);
    }
    return received;
  }

  /**
   * How many leading layers of the image the engine holds already (the longest chain any local image shares with
   * it): `docker load` skips a layer whose chain exists, so those are neither downloaded nor sent.
   */
  private async localChain(diffIds: readonly string[], signal: AbortSignal): Promise<number> {
    const { images } = await this.options.engine.snapshot(this.options.namespace, signal);
    let best = 0;
    for (const image of images) {
      if (best === diffIds.length) break;
      const local = await this.options.engine.imageDiffIds(image.id);
      if (local) best = Math.max(best, sharedPrefix(diffIds, local));
    }
    return best;
  }

  /** Layer files (finished or not) of no image this pull needs, untouched for a week: their image left the target. */
  private async removeStale(keep: ReadonlySet<string>): Promise<void> {
    const now = Date.now();
    for (const name of await readdir(this.dir)) {
      if (keep.has(`sha256:${name.replace(/\.part$/, '')}`)) continue;
      const file = join(this.dir, name);
      const info = await stat(file).catch(() => undefined);
      if (info && now - info.mtimeMs > STALE_LAYER_MS) await rm(file, { force: true });
    }
  }

  /**
   * The rest of the layers must fit in the data folder, and as much again for the engine's copy of the tarball
   * while it loads; the layer cache gives up old entries for it when the disk is short; without that room the device
   * says so and keeps its release (as deltas do).
   */
  private async ensureSpace(needed: readonly Layer[], ref: string): Promise<void> {
    let remaining = 0;
    let total = 0;
    for (const layer of needed) {
      total += layer.size;
      const have = (await sizeOf(this.layerFile(layer))) ?? (await sizeOf(`${this.layerFile(layer)}.part`)) ?? 0;
      remaining += layer.size - Math.min(have, layer.size);
    }
    const { free, freedFromCache } = await roomFor(this.dir, remaining + total, this.options.cache);
    if (freedFromCache > 0)
      this.options.log.info(
        { image: ref, freedBytes: freedFromCache, freeBytes: free },
        'layer cache shrunk to make room for an update',
      );
    if (free < remaining + total) {
      const mb = (n: number) => `${Math.ceil(n / 1024 / 1024)} MB`;
      throw new FlotillaError(
        'INSUFFICIENT_DISK',
        `not enough space to update to ${ref}: ${mb(remaining + total)} needed in ${this.dir}, ${mb(free)} free; the running release is kept`,
      );
    }
  }

  /**
   * Streams a `docker save`-format tarball to the engine: the config, the downloaded layer blobs (compressed: load
   * decompresses them and checks each against the config's diffIDs) and manifest.json last.
   */
  private async load(
    manifest: ImageManifest,
    config: Buffer,
    diffIds: readonly string[],
    shared: number,
    tag: string,
    signal: AbortSignal,
  ): Promise<void> {
    const configName = `${hexOf(manifest.config.digest)}.json`;
    const layerNames = diffIds.map((d) => `${hexOf(d)}/layer.tar`);
    const tar = pack();
    // WARNING: the engine's request reads the tarball through pipe(), which does not forward errors: the packing
    // promise and the load carry every error (see apply-delta.ts).
    tar.on('error', () => undefined);
    const packing = (async () => {
      tar.entry({ name: configName }, config);
      for (let i = shared; i < manifest.layers.length; i += 1) {
        signal.throwIfAborted();
        const layer = manifest.layers[i]!;
        await new Promise<void>((resolve, reject) => {
          const sink = tar.entry({ name: layerNames[i]!, size: layer.size }, (error) =>
            error ? reject(error) : resolve(),
          ) as unknown as NodeJS.WritableStream;
          sink.on('error', () => undefined);
          pipeline(createReadStream(this.layerFile(layer)), sink).catch(reject);
        });
      }
      tar.entry(
        { name: 'manifest.json' },
        JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: layerNames }]),
      );
      tar.finalize();
    })().catch((error: unknown) => {
      tar.destroy(error as Error);
      throw error;
    });
    const [loading, packed] = await Promise.allSettled([
      this.options.engine.loadImage(tar as unknown as Readable, signal),
      packing,
    ]);
    if (packed.status === 'rejected') throw packed.reason;
    if (loading.status === 'rejected')
      throw new FlotillaError('ENGINE_ERROR', `docker load refused the pulled image: ${String(loading.reason)}`);
  }
}
