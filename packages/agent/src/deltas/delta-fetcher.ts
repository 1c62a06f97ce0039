import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CONFIG_DEFAULTS,
  type DeltaDescriptor,
  FlotillaError,
  type TargetDevice,
  configVarKey,
} from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { CurrentContainer } from '../reconcile/state.js';
import { PRIVATE_DIR_MODE } from '../store/private-files.js';
import { applyDelta, verifyDeltaFile } from './apply-delta.js';
import { downloadResuming } from '../util/resumable-download.js';
import { type DeltaEndpoint, askDelta, deltaDownload, reportOutcome, xdelta3Runs } from './delta-client.js';
import { deltaTag } from './delta-tag.js';
import { type LayerCache, roomFor } from './layer-cache.js';

/** Config var SUPERVISOR_DELTA (any prefix): deltas are on unless it is `0` (or `false`). */
export function deltasEnabled(device: TargetDevice | undefined): boolean {
  const entry = Object.entries(device?.config ?? {}).find(([k]) => configVarKey(k) === 'SUPERVISOR_DELTA');
  const value = entry?.[1] ?? CONFIG_DEFAULTS.SUPERVISOR_DELTA;
  return value !== '0' && value.toLowerCase() !== 'false';
}

export interface DeltaFetcherOptions {
  engine: ContainerEngine;
  log: Logger;
  endpoint: DeltaEndpoint;
  /** The agent's data folder; partial deltas live in `<dataDir>/deltas/` so a restart resumes them. */
  dataDir: string;
  namespace: string;
  enabled: () => boolean;
  /** The target's image_id of `image` for that service (the model the planner planned from), if any. */
  targetImageId: (appId: number, serviceName: string, image: string) => number | undefined;
  /** How long a delta may stay pending on the server before the device pulls instead. Default 2 minutes. */
  pendingLimitMs?: number;
  /**
   * B's layers (diffIDs) by its reference, read from the registry: used to pick a base image for a service the
   * device does not run yet. Absent: such a service is pulled.
   */
  layersOf?: (ref: string, signal: AbortSignal) => Promise<string[]>;
  /** Fruitless download attempts in a row (each resumes where the previous stopped) before falling back. Default 5. */
  downloadAttempts?: number;
  /** Base layers read here before `docker save`; rebuilt layers kept here (layer-cache.ts). */
  cache?: LayerCache | undefined;
}

export interface DeltaFetchRequest {
  image: string;
  appId: number;
  serviceName: string;
}

/**
 * Gets a target image by delta instead of a pull when it can: the service's running container names the image it
 * was made from (its target image_id), the server computes the delta between the two, the device downloads it
 * (resuming) and rebuilds the image (apply-delta.ts). Falls back (resolves false: the caller pulls) on anything
 * but an abort or a full disk, logging why and telling the server.
 */
export class DeltaFetcher {
  private tool: Promise<boolean> | undefined;

  constructor(private readonly options: DeltaFetcherOptions) {}

  /** Whether xdelta3 runs here; asked once. */
  private xdelta3(): Promise<boolean> {
    this.tool ??= xdelta3Runs();
    return this.tool;
  }

  private get dir(): string {
    return join(this.options.dataDir, 'deltas');
  }

  async fetch(
    request: DeltaFetchRequest,
    signal: AbortSignal,
    onProgress?: (percent: number) => void,
  ): Promise<boolean> {
    const { log } = this.options;
    const tag = deltaTag(request.image);
    const imageId = this.options.targetImageId(request.appId, request.serviceName, request.image);
    if (!tag || imageId === undefined || !this.options.enabled()) return false;
    if (!(await this.xdelta3())) {
      log.warn({ image: request.image }, 'xdelta3 is not installed: pulling instead of using a delta');
      return false;
    }
    const base = await this.base(request, imageId, signal);
    if (!base?.targetImageId) return false;
    const pair = { fromImageId: base.targetImageId, toImageId: imageId };
    let delta: DeltaDescriptor | undefined;
    let bytesDownloaded = 0;
    try {
      delta = await this.ask(pair.fromImageId, pair.toImageId, signal);
      if (!delta) throw new FlotillaError('DELTA_UNAVAILABLE', 'the delta was not ready in time');
      await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
      const file = join(this.dir, `${delta.digest.slice('sha256:'.length)}.part`);
      const keepRebuilt = await this.ensureSpace(delta, file, request.image);
      const fetched = delta;
      bytesDownloaded = await downloadResuming(
        deltaDownload(this.options.endpoint, delta.path, file, delta.size, signal, (bytes) =>
          onProgress?.(Math.floor((100 * bytes) / Math.max(1, fetched.size))),
        ),
        this.options.downloadAttempts ?? 5,
        log,
      );
      await verifyDeltaFile(file, delta);
      const work = join(this.dir, `work-${delta.digest.slice('sha256:'.length, 23)}`);
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { mode: PRIVATE_DIR_MODE });
      let sources: Awaited<ReturnType<typeof applyDelta>>;
      try {
        sources = await applyDelta({
          engine: this.options.engine,
          baseRef: base.imageId,
          delta,
          deltaFile: file,
          workDir: work,
          tag,
          signal,
          cache: this.options.cache,
          keepRebuilt,
        });
      } catch (error) {
        // A delta that does not rebuild the image is useless: the next try downloads it anew, or pulls.
        if (error instanceof FlotillaError && error.code === 'DELTA_INVALID') await rm(file, { force: true });
        throw error;
      } finally {
        await rm(work, { recursive: true, force: true });
      }
      await rm(file, { force: true });
      log.info(
        {
          image: request.image,
          deltaBytes: delta.size,
          pullBytes: delta.pullBytes,
          downloadedNow: bytesDownloaded,
          baseLayersFromCache: sources.fromCache,
          baseLayersFromSave: sources.fromSave,
        },
        'image rebuilt from a delta',
      );
      await this.report({ ...pair, outcome: 'applied', bytesDownloaded: delta.size, pullBytes: delta.pullBytes });
      return true;
    } catch (error) {
      if (signal.aborted) throw error;
      if (error instanceof FlotillaError && error.code === 'INSUFFICIENT_DISK') throw error;
      const reason = error instanceof Error ? error.message : String(error);
      log.warn({ image: request.image, reason }, 'delta not used; pulling the image instead');
      await this.report({
        ...pair,
        outcome: 'fallback',
        reason: reason.slice(0, 500),
        bytesDownloaded,
        pullBytes: delta?.pullBytes ?? 0,
      });
      return false;
    }
  }

  /**
   * The container whose image the delta is asked from: the same service's (release A of it), else, for a service
   * the device does not run yet, the image of any of the agent's containers (an image of the fleet's releases, so
   * one the server holds) that shares the most layers with B: the longest common chain, then the most layers in
   * common. None when no image shares a layer with B, or B's layers cannot be read.
   */
  private async base(
    request: DeltaFetchRequest,
    imageId: number,
    signal: AbortSignal,
  ): Promise<CurrentContainer | undefined> {
    const { containers } = await this.options.engine.snapshot(this.options.namespace, signal);
    const candidates = containers.filter((c) => c.targetImageId !== undefined && c.targetImageId !== imageId);
    const same = candidates.find((c) => c.appId === request.appId && c.serviceName === request.serviceName);
    if (same || candidates.length === 0 || !this.options.layersOf) return same;
    const wanted = await this.options.layersOf(request.image, signal).catch((error: unknown) => {
      if (signal.aborted) throw error;
      return undefined;
    });
    if (!wanted) return undefined;
    const want = new Set(wanted);
    let best: { container: CurrentContainer; chain: number; common: number } | undefined;
    for (const container of new Map(candidates.map((c) => [c.imageId, c])).values()) {
      const layers = (await this.options.engine.imageDiffIds(container.imageId)) ?? [];
      let chain = 0;
      while (chain < layers.length && chain < wanted.length && layers[chain] === wanted[chain]) chain += 1;
      const common = new Set(layers.filter((l) => want.has(l))).size;
      if (common > 0 && (!best || chain > best.chain || (chain === best.chain && common > best.common)))
        best = { container, chain, common };
    }
    if (best)
      this.options.log.info(
        { image: request.image, from: best.container.serviceName, sharedLayers: best.common },
        'asking for a delta from another service’s image',
      );
    return best?.container;
  }

  /** Asks until the delta is ready or the pending limit is over (undefined then). */
  private async ask(fromImageId: number, toImageId: number, signal: AbortSignal): Promise<DeltaDescriptor | undefined> {
    const deadline = Date.now() + (this.options.pendingLimitMs ?? 120_000);
    for (;;) {
      const answer = await askDelta(this.options.endpoint, fromImageId, toImageId, signal);
      if (answer.status === 'ready') return answer.delta;
      const wait = Math.min(answer.retryAfterMs, deadline - Date.now());
      if (wait <= 0) return undefined;
      await sleep(wait, undefined, { signal });
    }
  }

  /**
   * Rebuilding needs room for the rest of the delta, the rebuilt layers, the base layers read from the engine and
   * the engine's own unpacked copy, and a fourth copy when the layer cache keeps the rebuilt layers. When the disk
   * is short, the layer cache on it gives up its least recently used entries first (it only saves time); then the
   * rebuilt layers are not kept; without room even then the device says so and keeps its release (the step fails and
   * is retried, and download-then-kill never stops what runs before the new image is there). Returns whether the
   * rebuilt layers may be kept.
   */
  private async ensureSpace(delta: DeltaDescriptor, file: string, image: string): Promise<boolean> {
    const { cache, log } = this.options;
    const have = (await stat(file).catch(() => undefined))?.size ?? 0;
    const layers = delta.layers.reduce((sum, l) => sum + l.size, 0);
    const needed = delta.size - have + 3 * layers;
    const kept = cache ? layers : 0;
    const { free, freedFromCache } = await roomFor(this.dir, needed + kept, cache);
    if (freedFromCache > 0)
      log.info({ image, freedBytes: freedFromCache, freeBytes: free }, 'layer cache shrunk to make room for an update');
    if (free >= needed + kept) return cache !== undefined;
    if (free < needed) {
      const mb = (n: number) => `${Math.ceil(n / 1024 / 1024)} MB`;
      throw new FlotillaError(
        'INSUFFICIENT_DISK',
        `not enough space to update to ${image}: ${mb(needed)} needed in ${this.dir}, ${mb(free)} free; the running release is kept`,
      );
    }
    log.info({ image, freeBytes: free }, 'the layers rebuilt for this update are not kept: the disk is short');
    return false;
  }

  private async report(outcome: Parameters<typeof reportOutcome>[1]): Promise<void> {
    try {
      await reportOutcome(this.options.endpoint, outcome, AbortSignal.timeout(30_000));
    } catch (error) {
      this.options.log.warn({ err: error }, 'could not report the delta outcome');
    }
  }
}
