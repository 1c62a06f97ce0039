import type { FastifyBaseLogger } from 'fastify';
import { FlotillaError, type OsDeltaRequest } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { Metrics } from '../metrics/metrics.js';
import { osReleasesOfDevice } from '../os-releases/os-releases.js';
import { runningOsVersion } from '../rollouts/judge.js';
import type { RegistryStorage } from '../registry/storage.js';
import type { ComputeQueue } from './compute-queue.js';
import { computeOsDelta } from './compute-os-delta.js';
import type { DeltaStore, ReadyOsPair } from './delta-store.js';

export interface OsDeltaServiceOptions {
  db: Db;
  storage: RegistryStorage;
  store: DeltaStore;
  /** The app deltas' queue: OS and app computations share its concurrency. */
  queue: ComputeQueue;
  metrics: Metrics;
  log: FastifyBaseLogger;
  retryAfterMs?: number;
  /** False when xdelta3 is missing: every ask is DELTA_UNAVAILABLE and devices download the full image. */
  enabled: boolean;
}

export type OsDeltaLookup = { status: 'pending'; retryAfterMs: number } | { status: 'ready'; pair: ReadyOsPair };

type Which = { version: string } | { sha256: string };

/** OS versions a precompute queues deltas from, at most: a fleet runs a few, never hundreds. */
const MAX_AHEAD = 16;

/**
 * Answers devices' OS delta asks and computes them on demand (os-deltas.ts in the protocol). Tenancy: the source and
 * the target must both be OS releases of the device's organization and device type, the rule of the full image's
 * download (os-releases.ts `deviceMayDownload`); anything else is OS_RELEASE_NOT_FOUND, as an image that does not
 * exist, never "forbidden".
 */
export class OsDeltaService {
  constructor(private readonly o: OsDeltaServiceOptions) {}

  async request(deviceId: number, ask: OsDeltaRequest): Promise<OsDeltaLookup> {
    const from = await this.image(
      deviceId,
      ask.fromSha256 !== undefined ? { sha256: ask.fromSha256 } : { version: ask.fromVersion ?? '' },
    );
    const to = await this.image(deviceId, { sha256: ask.toSha256 });
    if (!this.o.enabled) {
      this.o.metrics.deltaRequests.inc({ result: 'unavailable' });
      throw new FlotillaError('DELTA_UNAVAILABLE', 'this server cannot compute deltas (xdelta3 is missing)');
    }
    if (from === to) throw new FlotillaError('DELTA_UNAVAILABLE', 'the device already runs this OS image');
    const pair = await this.o.store.readOsPair(from, to);
    if (pair?.ok) {
      this.o.metrics.deltaRequests.inc({ result: 'hit' });
      return { status: 'ready', pair };
    }
    if (pair) {
      this.o.metrics.deltaRequests.inc({ result: 'unavailable' });
      throw new FlotillaError('DELTA_UNAVAILABLE', `no delta between these OS images: ${pair.reason}`);
    }
    this.o.metrics.deltaRequests.inc({ result: 'pending' });
    this.start(from, to);
    return { status: 'pending', retryAfterMs: this.o.retryAfterMs ?? 2_000 };
  }

  /**
   * Queues, ahead of the devices' asks, the deltas to OS release `releaseId` from each OS version the devices just
   * given it report running (those that are releases of its organization and device type), so that a large image's
   * computation runs while the devices are still polling: a device that asks first waits at most its limit (2 min)
   * and then downloads the whole image. Best effort, never throws; at most MAX_AHEAD sources.
   */
  async precompute(releaseId: number, devices: { fleetId: number } | { deviceId: number }): Promise<void> {
    if (!this.o.enabled) return;
    try {
      const { db } = this.o;
      const target = await db
        .selectFrom('os_releases')
        .select(['organization_id', 'device_type', 'version', 'image_sha256'])
        .where('id', '=', releaseId)
        .executeTakeFirst();
      if (!target) return;
      let query = db
        .selectFrom('devices')
        .select(['os_version', 'os_update_json'])
        .distinct()
        .where('device_type', '=', target.device_type);
      query =
        'fleetId' in devices ? query.where('fleet_id', '=', devices.fleetId) : query.where('id', '=', devices.deviceId);
      const reports = await query.execute();
      const versions = new Set(reports.map(runningOsVersion));
      versions.delete(undefined);
      versions.delete(target.version);
      if (versions.size === 0) return;
      const sources = await db
        .selectFrom('os_releases')
        .select('image_sha256')
        .where('organization_id', '=', target.organization_id)
        .where('device_type', '=', target.device_type)
        .where('version', 'in', [...versions].slice(0, MAX_AHEAD) as string[])
        .execute();
      for (const { image_sha256: from } of sources) {
        if (from === target.image_sha256 || (await this.o.store.readOsPair(from, target.image_sha256))) continue;
        this.start(from, target.image_sha256);
      }
    } catch (error) {
      this.o.log.error({ err: error, releaseId }, 'queueing OS deltas ahead failed');
    }
  }

  /** The stored pair for a download, re-checking that both images are releases the device may download. */
  async readyPair(deviceId: number, fromHex: string, toHex: string): Promise<ReadyOsPair | undefined> {
    await this.image(deviceId, { sha256: fromHex });
    await this.image(deviceId, { sha256: toHex });
    const pair = await this.o.store.readOsPair(fromHex, toHex);
    return pair?.ok ? pair : undefined;
  }

  private start(fromHex: string, toHex: string): void {
    this.o.queue.run(`os:${fromHex}-${toHex}`, async (signal) => {
      const started = Date.now();
      try {
        const pair = await computeOsDelta(this.o.storage, this.o.store, fromHex, toHex, signal);
        this.o.metrics.deltaComputations.inc({ result: pair.ok ? 'ready' : 'impossible' });
        this.o.log.info(
          { from: fromHex, to: toHex, ms: Date.now() - started, ...(pair.ok ? { bytes: pair.size } : pair) },
          pair.ok ? 'OS delta computed' : 'no OS delta possible',
        );
      } catch (error) {
        this.o.metrics.deltaComputations.inc({ result: 'error' });
        if (!signal.aborted) this.o.log.error({ err: error, from: fromHex, to: toHex }, 'OS delta computation failed');
      }
    });
  }

  /** The slot image (hex sha256) of the device's organization's OS release for its device type that `which` names. */
  private async image(deviceId: number, which: Which): Promise<string> {
    let q = osReleasesOfDevice(this.o.db, deviceId).select('os_releases.image_sha256');
    q =
      'version' in which
        ? q.where('os_releases.version', '=', which.version)
        : q.where('os_releases.image_sha256', '=', which.sha256);
    const row = await q.executeTakeFirst();
    if (!row) {
      const what = 'version' in which ? `OS ${which.version}` : `OS image ${which.sha256}`;
      throw new FlotillaError('OS_RELEASE_NOT_FOUND', `no OS release of this device has ${what}`);
    }
    return row.image_sha256;
  }
}
