import rateLimit from '@fastify/rate-limit';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { FlotillaError } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { AppContext } from './context.js';
import type { OpenedDatabase } from './db/database.js';
import { registerAuthRoutes } from './auth/routes.js';
import { LastSeenTracker } from './device-api/last-seen.js';
import { registerDeviceRoutes } from './device-api/routes.js';
import { TargetStateCache } from './device-api/target-state-cache.js';
import { registerDeviceUserRoutes } from './devices/routes.js';
import { registerErrorHandling, toErrorBody } from './errors/error-handler.js';
import { registerFleetRoutes } from './fleets/routes.js';
import { createMetrics, registerMetricsHooks } from './metrics/metrics.js';
import { registerOpenApi } from './openapi/openapi.js';
import { registerOrganizationRoutes } from './organizations/routes.js';
import { registerReleaseRoutes } from './releases/routes.js';
import { redactUploadIds } from './registry/names.js';
import { registerFlotillaRegistry } from './registry/register.js';
import { ActionHub } from './actions/action-hub.js';
import { registerActionRoutes } from './actions/routes.js';
import { LogHub } from './logs/log-hub.js';
import { LogStore } from './logs/log-store.js';
import { registerLogRoutes } from './logs/routes.js';
import { PostgresBus, SingleNodeBus, type EventBus } from './bus/event-bus.js';

export interface AppOptions {
  database: OpenedDatabase;
  /** Base URL devices and CLIs use to reach this server; goes into config.json. */
  publicUrl: string;
  /** pino level, or false for no logging (tests). */
  logLevel?: string | false;
  /** Default request body limit in bytes. */
  bodyLimit?: number;
  /** Collect process metrics (CPU, memory, event loop) too; off in tests. */
  processMetrics?: boolean;
  /** Folder for registry blobs; without it, a temp folder that lives as long as the app. */
  registryDir?: string;
  /** Log lines kept per device (default 1,000). */
  logRetention?: number;
  /** How often registry garbage is collected (default daily; 0 never). */
  registryGcIntervalMs?: number;
  /** Largest registry blob upload in bytes (default 10 GiB; 0 no limit). */
  registryMaxUploadBytes?: number;
  /** Registry storage quota per organization in bytes (default 0: no quota). */
  registryQuotaBytes?: number;
}

export type FlotillaApp = FastifyInstance & { flotilla: AppContext };

/** JSON bodies: an empty body is "no body" (optional bodies), bad JSON is INVALID_JSON, `__proto__` keys are dropped. */
function parseJson(_request: unknown, body: string, done: (error: Error | null, value?: unknown) => void): void {
  if (body.trim() === '') {
    done(null, undefined);
    return;
  }
  try {
    done(
      null,
      JSON.parse(body, (key, value: unknown) => (key === '__proto__' || key === 'constructor' ? undefined : value)),
    );
  } catch {
    done(new FlotillaError('INVALID_JSON', 'the request body is not valid JSON'));
  }
}

export async function buildApp(options: AppOptions): Promise<FlotillaApp> {
  const level = options.logLevel === undefined ? 'info' : options.logLevel;
  const app = Fastify({
    logger:
      level === false
        ? false
        : {
            level,
            // WARNING: keys and tokens must never reach the log.
            // The URL is logged without its query: balena clients may put a key in `?apikey=`; registry upload
            // IDs (capabilities) are cut out of it.
            serializers: {
              req: (req: { method: string; url: string; ip?: string }) => ({
                method: req.method,
                url: redactUploadIds(req.url.split('?')[0] ?? ''),
                remoteAddress: req.ip,
              }),
            },
            redact: {
              paths: [
                'req.headers.authorization',
                'req.headers.cookie',
                'req.query.apikey',
                '*.password',
                '*.apiKey',
                '*.api_key',
                '*.key',
                '*.token',
              ],
              censor: '[redacted]',
            },
          },
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    return503OnClosing: true,
    // Router-level failures (over-long parameters, malformed URLs) must answer in the same error shape.
    frameworkErrors: (error, _request, reply) => {
      const { status, body } = toErrorBody(error);
      // This reply's generics are left open by fastify's types, so its status/body types collapse to never.
      void (reply as unknown as FastifyReply).status(status).send(body);
    },
    routerOptions: { maxParamLength: 200 },
  });
  const { db } = options.database;
  const metrics = createMetrics(db, options.processMetrics ?? false);
  const ctx: AppContext = {
    db,
    dialect: options.database.dialect,
    publicUrl: options.publicUrl.replace(/\/+$/, ''),
    metrics,
    stateCache: new TargetStateCache(),
    routes: [],
    sqlite: options.database.sqlite,
  };
  const lastSeen = new LastSeenTracker(db);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') ctx.routes.push({ method, url: route.url });
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  registerErrorHandling(app);
  registerMetricsHooks(app, metrics);
  // Only routes that ask for it are limited (see auth/routes.ts); an exceeded limit answers the usual error shape.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_request, context) =>
      new FlotillaError('RATE_LIMITED', `too many attempts; retry in ${Math.max(1, Math.ceil(context.ttl / 1000))} s`),
  });
  app.get('/healthz', async (_request, reply) => {
    try {
      await sql`select 1`.execute(db);
      return { status: 'ok' };
    } catch {
      return reply.status(503).send(new FlotillaError('UNAVAILABLE', 'the database does not answer').toBody());
    }
  });
  registerAuthRoutes(app, ctx);
  registerOrganizationRoutes(app, ctx);
  registerFleetRoutes(app, ctx);
  registerDeviceUserRoutes(app, ctx);
  registerReleaseRoutes(app, ctx);
  registerDeviceRoutes(app, ctx, lastSeen);
  // Server nodes sharing a PostgreSQL database tell each other about logs and actions; SQLite has one node.
  const { postgresUrl } = options.database;
  const bus: EventBus = postgresUrl ? new PostgresBus(postgresUrl, db, app.log) : new SingleNodeBus();
  await bus.start();
  app.addHook('onClose', async () => bus.close());
  registerLogRoutes(app, ctx, new LogStore(db, options.logRetention), new LogHub(), bus);
  await registerActionRoutes(app, ctx, new ActionHub(), bus);
  await registerFlotillaRegistry(app, {
    db,
    storageDir: options.registryDir,
    publicUrl: () => ctx.publicUrl,
    gcIntervalMs: options.registryGcIntervalMs,
    limits: { maxUploadBytes: options.registryMaxUploadBytes, quotaBytes: options.registryQuotaBytes },
  });
  registerOpenApi(app, ctx.routes);
  app.addHook('onClose', async () => {
    await lastSeen.close();
  });
  app.decorate('flotilla', ctx);
  // decorate() adds the property at runtime; TypeScript cannot see it without module augmentation.
  return app as FastifyInstance as FlotillaApp;
}
