import type { FastifyBaseLogger } from 'fastify';
import { FlotillaError } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseImageRef } from '../registry/gc.js';
import type { RegistryStorage } from '../registry/storage.js';
import { type ComputeLimits, computeDelta } from './compute-delta.js';
import type { ComputeQueue } from './compute-queue.js';
import type { DeltaStore, ReadyPair } from './delta-store.js';

export interface DeltaServiceOptions {
  db: Db;
  storage: RegistryStorage;
  store: DeltaStore;
  metrics: Metrics;
  log: FastifyBaseLogger;
  /** Shared with the OS deltas (os-delta-service.ts): it bounds the computations at once. */
  queue: ComputeQueue;
  /** Pairs waiting beyond this are not queued ahead; asked for, they are queued then. Default 64. */
  maxQueued?: number;
  limits?: Partial<ComputeLimits>;
  /** What a pending answer tells the device to wait. Default 2 s. */
  retryAfterMs?: number;
  /** False when xdelta3 is missing: every ask is DELTA_UNAVAILABLE and devices pull. */
  enabled?: boolean;
}

/** An image of a release of one fleet: `image_id` of target state, and its manifest in the registry. */
interface FleetImage {
  id: number;
  serviceName: string;
  manifestHex: string;
}

export type DeltaLookup = { status: 'pending'; retryAfterMs: number } | { status: 'ready'; pair: ReadyPair };

const DEFAULT_MAX_LAYER_BYTES = 4 * 1024 * 1024 * 1024;

/**
 * Answers devices' delta requests and computes deltas in the background, at most `concurrency` at a time. A pair is
 * computed once (the pair file is the record); requests for a pair being computed answer pending.
 */
export class DeltaService {
  private readonly limits: ComputeLimits;

  constructor(private readonly options: DeltaServiceOptions) {
    this.limits = { maxLayerBytes: options.limits?.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES };
  }

  /**
   * The delta between two images of the device's fleet. INVARIANT: both ids must be images of releases of
   * `fleetId`; any other id is IMAGE_NOT_FOUND, the same answer as an id that does not exist.
   */
  async request(fleetId: number, fromImageId: number, toImageId: number): Promise<DeltaLookup> {
    const [from, to] = await Promise.all([this.image(fleetId, fromImageId), this.image(fleetId, toImageId)]);
    if (!this.options.enabled) {
      this.options.metrics.deltaRequests.inc({ result: 'unavailable' });
      throw new FlotillaError('DELTA_UNAVAILABLE', 'this server cannot compute deltas (xdelta3 is missing)');
    }
    const pair = await this.options.store.readPair(from.manifestHex, to.manifestHex);
    if (pair?.ok) {
      this.options.metrics.deltaRequests.inc({ result: 'hit' });
      return { status: 'ready', pair };
    }
    if (pair) {
      this.options.metrics.deltaRequests.inc({ result: 'unavailable' });
      throw new FlotillaError('DELTA_UNAVAILABLE', `no delta between these images: ${pair.reason}`);
    }
    this.options.metrics.deltaRequests.inc({ result: 'pending' });
    this.start(from.manifestHex, to.manifestHex);
    return { status: 'pending', retryAfterMs: this.options.retryAfterMs ?? 2_000 };
  }

  /** The stored pair for a download, re-checking that both images are the fleet's. */
  async readyPair(fleetId: number, fromImageId: number, toImageId: number): Promise<ReadyPair | undefined> {
    const [from, to] = await Promise.all([this.image(fleetId, fromImageId), this.image(fleetId, toImageId)]);
    const pair = await this.options.store.readPair(from.manifestHex, to.manifestHex);
    return pair?.ok ? pair : undefined;
  }

  /**
   * A release was deployed: queue the deltas its fleet's devices will ask for, from the release each runs now to
   * this one, service by service. Bounded by `maxQueued`; what is left out is computed when asked for.
   */
  async precompute(fleetId: number, releaseId: number): Promise<void> {
    try {
      await this.queueAhead(fleetId, releaseId);
    } catch (error) {
      this.options.log.error({ err: error, fleetId, releaseId }, 'queueing deltas ahead failed');
    }
  }

  private async queueAhead(fleetId: number, releaseId: number): Promise<void> {
    if (!this.options.enabled) return;
    const { db } = this.options;
    const target = await this.releaseImages(releaseId);
    const running = await db
      .selectFrom('devices')
      .innerJoin('releases', (join) =>
        join.onRef('releases.commit', '=', 'devices.running_release').on('releases.fleet_id', '=', fleetId),
      )
      .select('releases.id')
      .distinct()
      .where('devices.fleet_id', '=', fleetId)
      .where('releases.id', '!=', releaseId)
      .execute();
    for (const { id } of running) {
      for (const from of await this.releaseImages(id)) {
        const to = target.find((t) => t.serviceName === from.serviceName);
        if (!to || to.manifestHex === from.manifestHex) continue;
        if (this.options.queue.size >= (this.options.maxQueued ?? 64)) return;
        if (!(await this.options.store.readPair(from.manifestHex, to.manifestHex)))
          this.start(from.manifestHex, to.manifestHex);
      }
    }
  }

  /** Stops queued work, aborts computations in progress (their temp folders are removed) and waits for them. */
  async close(): Promise<void> {
    await this.options.queue.close();
  }

  private start(fromHex: string, toHex: string): void {
    this.options.queue.run(`${fromHex}-${toHex}`, async (signal) => {
      try {
        const started = Date.now();
        const pair = await computeDelta(this.options.storage, this.options.store, fromHex, toHex, this.limits, signal);
        this.options.metrics.deltaComputations.inc({ result: pair.ok ? 'ready' : 'impossible' });
        this.options.log.info(
          { from: fromHex, to: toHex, ms: Date.now() - started, ...(pair.ok ? { bytes: pair.size } : pair) },
          pair.ok ? 'delta computed' : 'no delta possible',
        );
      } catch (error) {
        // A failure that is not the pair's fault (disk, abort): nothing recorded, so a later ask tries again.
        this.options.metrics.deltaComputations.inc({ result: 'error' });
        if (!signal.aborted)
          this.options.log.error({ err: error, from: fromHex, to: toHex }, 'delta computation failed');
      }
    });
  }

  private async image(fleetId: number, imageId: number): Promise<FleetImage> {
    const row = await this.options.db
      .selectFrom('release_services')
      .innerJoin('releases', 'releases.id', 'release_services.release_id')
      .select(['release_services.id', 'release_services.name', 'release_services.image'])
      .where('release_services.id', '=', imageId)
      .where('releases.fleet_id', '=', fleetId)
      .executeTakeFirst();
    const hex = row?.image ? parseImageRef(row.image)?.hex : undefined;
    if (!row || !hex) throw new FlotillaError('IMAGE_NOT_FOUND', `no image ${imageId} in this device's fleet`);
    return { id: row.id, serviceName: row.name, manifestHex: hex };
  }

  private async releaseImages(releaseId: number): Promise<FleetImage[]> {
    const rows = await this.options.db
      .selectFrom('release_services')
      .select(['id', 'name', 'image'])
      .where('release_id', '=', releaseId)
      .execute();
    return rows.flatMap((row) => {
      const hex = row.image ? parseImageRef(row.image)?.hex : undefined;
      return hex ? [{ id: row.id, serviceName: row.name, manifestHex: hex }] : [];
    });
  }
}
