import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import type { RegistryStorage } from '../registry/storage.js';
import { xdelta3Available } from './compute-delta.js';
import { DeltaService, type DeltaServiceOptions } from './delta-service.js';
import { DeltaStore } from './delta-store.js';
import { registerDeltaRoutes } from './routes.js';

/** Delta storage beside the registry's blobs, the computing service, and the device routes. */
export async function installDeltas(
  app: FastifyInstance,
  ctx: AppContext,
  storage: RegistryStorage,
  options: { concurrency?: number; maxLayerBytes?: number; retryAfterMs?: number } = {},
): Promise<DeltaService> {
  const store = new DeltaStore(storage.root);
  await store.init();
  const enabled = await xdelta3Available();
  if (!enabled) app.log.warn('xdelta3 is not installed: no deltas are computed and devices pull whole layers');
  const serviceOptions: DeltaServiceOptions = {
    db: ctx.db,
    storage,
    store,
    metrics: ctx.metrics,
    log: app.log,
    enabled,
  };
  if (options.concurrency !== undefined) serviceOptions.concurrency = options.concurrency;
  if (options.retryAfterMs !== undefined) serviceOptions.retryAfterMs = options.retryAfterMs;
  if (options.maxLayerBytes !== undefined) serviceOptions.limits = { maxLayerBytes: options.maxLayerBytes };
  const deltas = new DeltaService(serviceOptions);
  ctx.deltas = deltas;
  registerDeltaRoutes(app, ctx, deltas, store);
  app.addHook('onClose', async () => deltas.close());
  return deltas;
}
