import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import type { RegistryStorage } from '../registry/storage.js';
import { xdelta3Available } from './compute-delta.js';
import { ComputeQueue } from './compute-queue.js';
import { DeltaService, type DeltaServiceOptions } from './delta-service.js';
import { DeltaStore } from './delta-store.js';
import { OsDeltaService, type OsDeltaServiceOptions } from './os-delta-service.js';
import { registerOsDeltaRoutes } from './os-delta-routes.js';
import { registerDeltaRoutes } from './routes.js';

/**
 * Delta storage beside the registry's blobs, the computing services (app and OS deltas, one queue: `concurrency`
 * computations at once in all, default 1), and the device routes.
 */
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
  const queue = new ComputeQueue(options.concurrency ?? 1);
  // What the app and the OS delta services share: the store, the one queue, and how a pending answer reads.
  const shared: OsDeltaServiceOptions = {
    db: ctx.db,
    storage,
    store,
    queue,
    metrics: ctx.metrics,
    log: app.log,
    enabled,
    ...(options.retryAfterMs !== undefined ? { retryAfterMs: options.retryAfterMs } : {}),
  };
  const serviceOptions: DeltaServiceOptions = { ...shared };
  if (options.maxLayerBytes !== undefined) serviceOptions.limits = { maxLayerBytes: options.maxLayerBytes };
  const deltas = new DeltaService(serviceOptions);
  ctx.deltas = deltas;
  registerDeltaRoutes(app, ctx, deltas, store);
  const osDeltas = new OsDeltaService(shared);
  ctx.osDeltas = osDeltas;
  registerOsDeltaRoutes(app, ctx, osDeltas, store);
  app.addHook('onClose', async () => deltas.close());
  return deltas;
}
