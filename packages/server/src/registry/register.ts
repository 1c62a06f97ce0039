import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { GuessLimiter } from '../auth/guess-limiter.js';
import type { Db } from '../db/database.js';
import { flotillaRegistryAccess } from './flotilla-access.js';
import { collectFleetGarbage } from './fleet-repositories.js';
import { migrateRepositoryLayout } from './layout-migration.js';
import type { RegistryLimits } from './limits.js';
import { registryPlugin } from './plugin.js';
import { RegistryStorage } from './storage.js';
import type { DiskHealth } from '../disk/disk-health.js';
import { reclaimAbandonedUploads } from './upload-space.js';

/**
 * Registers the registry in the Flotilla app. Without a storage folder (in-memory database, tests) the images
 * go to a temp folder removed when the app closes, matching the lifetime of such a database.
 */
export async function registerFlotillaRegistry(
  app: FastifyInstance,
  options: {
    db: Db;
    limiter: GuessLimiter;
    storageDir: string | undefined;
    publicUrl: () => string;
    gcIntervalMs?: number | undefined;
    /** The data folder's disk: abandoned uploads are one of the things it reclaims when space runs low. */
    space?: DiskHealth | undefined;
    limits?: { [K in keyof RegistryLimits]?: number | undefined };
  },
): Promise<RegistryStorage> {
  let storageDir = options.storageDir;
  if (storageDir === undefined) {
    const temp = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
    app.addHook('onClose', async () => rm(temp, { recursive: true, force: true }));
    storageDir = temp;
  }
  const storage = new RegistryStorage(storageDir);
  await storage.init();
  const migrated = await migrateRepositoryLayout(storage, options.db);
  if (migrated.moved + migrated.dropped > 0)
    app.log.info({ ...migrated }, 'registry repositories moved to their fleet uuid (layout 2)');
  const limits: Partial<RegistryLimits> = {};
  if (options.limits?.maxUploadBytes !== undefined) limits.maxUploadBytes = options.limits.maxUploadBytes;
  if (options.limits?.quotaBytes !== undefined) limits.quotaBytes = options.limits.quotaBytes;
  await app.register(registryPlugin, {
    storageDir,
    access: flotillaRegistryAccess(options.db, options.limiter),
    publicUrl: options.publicUrl,
    space: options.space,
    limits,
  });
  const uploadsRoot = storageDir;
  options.space?.addReclaimer((enough) => reclaimAbandonedUploads(uploadsRoot, enough));
  scheduleGarbageCollection(app, options.db, storage, options.gcIntervalMs ?? DAY_MS);
  return storage;
}

const DAY_MS = 24 * 3600 * 1000;
/** The first collection waits this long after start, so a server restarted in a loop does no extra work. */
const FIRST_GC_DELAY_MS = 10 * 60 * 1000;

/**
 * Collects registry garbage (registry/gc.ts) ten minutes after start and then every `intervalMs` (0: never), one
 * run at a time; the server's close waits for a run in progress.
 */
function scheduleGarbageCollection(app: FastifyInstance, db: Db, storage: RegistryStorage, intervalMs: number): void {
  if (intervalMs <= 0) return;
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= (async () => {
      try {
        const result = await collectFleetGarbage(db, storage);
        app.log.info({ ...result }, 'registry garbage collected');
      } catch (error) {
        app.log.error({ err: error }, 'registry garbage collection failed');
      } finally {
        running = undefined;
      }
    })();
  };
  let timer = setTimeout(
    function tick() {
      run();
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    },
    Math.min(FIRST_GC_DELAY_MS, intervalMs),
  );
  timer.unref();
  app.addHook('onClose', async () => {
    clearTimeout(timer);
    await running;
  });
}
