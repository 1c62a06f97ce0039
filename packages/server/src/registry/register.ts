import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/database.js';
import { flotillaRegistryAccess } from './flotilla-access.js';
import { registryPlugin } from './plugin.js';

/**
 * Registers the registry in the Flotilla app. Without a storage folder (in-memory database, tests) the images
 * go to a temp folder removed when the app closes, matching the lifetime of such a database.
 */
export async function registerFlotillaRegistry(app: FastifyInstance, options: { db: Db; storageDir: string | undefined; publicUrl: () => string }): Promise<void> {
  let storageDir = options.storageDir;
  if (storageDir === undefined) {
    const temp = await mkdtemp(join(tmpdir(), 'flotilla-registry-'));
    app.addHook('onClose', async () => rm(temp, { recursive: true, force: true }));
    storageDir = temp;
  }
  await app.register(registryPlugin, { storageDir, access: flotillaRegistryAccess(options.db), publicUrl: options.publicUrl });
}
