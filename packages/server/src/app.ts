import websocket from '@fastify/websocket';
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { FlotillaError } from '@flotilla/protocol';
import { sql } from 'kysely';
import type { AppContext } from './context.js';
import type { OpenedDatabase } from './db/database.js';
import { DEFAULT_GUESS_LIMITS, GuessLimiter, installGuessLimiter } from './auth/guess-limiter.js';
import type { GuessLimits } from './auth/guess-limiter.js';
import { registerAuthRoutes } from './auth/routes.js';
import { installUserStreams } from './auth/user-streams.js';
import { LastSeenTracker } from './device-api/last-seen.js';
import { PollCache } from './device-api/poll-cache.js';
import { createPollLookup } from './device-api/poll-lookup.js';
import { registerDeviceRoutes } from './device-api/routes.js';
import { registerOsRoutes } from './device-api/os-routes.js';
import { installDeltas } from './deltas/install.js';
import { devicePartReader } from './device-api/device-part.js';
import { TargetStates } from './device-api/target-state.js';
import { DEFAULT_DASHBOARD_DIR, registerDashboard } from './dashboard/register-dashboard.js';
import { registerDeviceUserRoutes } from './devices/routes.js';
import { apiNotFound, registerErrorHandling, toErrorBody } from './errors/error-handler.js';
import { registerFleetRoutes } from './fleets/routes.js';
import { createMetrics, registerMetricsHooks } from './metrics/metrics.js';
import { registerODataRoutes } from './odata/routes.js';
import { registerOpenApi } from './openapi/openapi.js';
import { registerOrganizationRoutes } from './organizations/routes.js';
import { registerReleaseRoutes } from './releases/routes.js';
import { redactUploadIds } from './registry/names.js';
import { registerVariableRoutes } from './variables/routes.js';
import { ImageSizes } from './registry/image-size.js';
import { registerFlotillaRegistry } from './registry/register.js';
import { registerActionRoutes } from './actions/routes.js';
import { ConnectionHub } from './device-connection/connection-hub.js';
import { registerDeviceConnection } from './device-connection/routes.js';
import { installRemoteAccess } from './remote-access/install.js';
import { PublicUrls } from './remote-access/public-urls.js';
import { registerRemoteAccessRoutes } from './remote-access/routes.js';
import { StreamBroker } from './remote-access/stream-broker.js';
import { DeviceChanges } from './events/device-changes.js';
import { registerFleetEventRoutes } from './events/routes.js';
import { LogHub } from './logs/log-hub.js';
import { LogStore } from './logs/log-store.js';
import { registerLogRoutes } from './logs/routes.js';
import { PostgresBus, SingleNodeBus, type EventBus } from './bus/event-bus.js';
import { DiskHealth } from './disk/disk-health.js';
import { isNoSpaceError } from './disk/no-space.js';
import {
  DEFAULT_HTTP_LIMITS,
  httpServerFactory,
  registerRequestTimeout,
  type FrontDoor,
  type HttpLimits,
} from './http/limits.js';
import { DEFAULT_RELEASE_TIMEOUT_MS, scheduleReleaseTimeout } from './releases/release-timeout.js';
import type { ServerTls } from './tls/server-tls.js';
import { RolloutEngine } from './rollouts/rollout-engine.js';
import { registerRolloutRoutes } from './rollouts/routes.js';
import { registerUpdateWindowRoutes } from './update-windows/routes.js';
import { registerOsReleaseRoutes } from './os-releases/routes.js';

export interface AppOptions {
  database: OpenedDatabase;
  /** Base URL devices and CLIs use to reach this server; goes into config.json. */
  publicUrl: string;
  /** Speak HTTPS with this certificate; its `ca`, when given, goes into the config.json the server builds. */
  tls?: ServerTls | undefined;
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
  /** Limits on wrong passwords and keys (auth/guess-limiter.ts); defaults in DEFAULT_GUESS_LIMITS. */
  guessLimits?: Partial<GuessLimits>;
  /** The data folder, whose free space `/healthz` reports and abandoned uploads are reclaimed on. */
  dataDir?: string | undefined;
  /** Below this much free space on the data folder: unhealthy, and new registry uploads are refused (default 100 MB). */
  diskMinFreeBytes?: number;
  /** How often free space is checked and abandoned uploads reclaimed when it is low (default 30 s). */
  diskCheckIntervalMs?: number;
  /** Releases still running this long after creation are marked failed (default 60 min; 0 never). */
  releaseTimeoutMs?: number;
  /** HTTP timeouts and connection cap (http/limits.ts); each defaults to DEFAULT_HTTP_LIMITS. */
  http?: Partial<HttpLimits> | undefined;
  /** Largest registry blob upload in bytes (default 10 GiB; 0 no limit). */
  registryMaxUploadBytes?: number;
  /** Registry storage quota per organization in bytes (default 0: no quota). */
  registryQuotaBytes?: number;
  /** How the other server nodes reach this one (default: the public URL). */
  nodeUrl?: string;
  /** Wildcard domain of host-based public device URLs (`<uuid>.<domain>`); without it they are path-based. */
  publicUrlDomain?: string;
  /** How long a shell or tunnel waits for the device to dial its half (default 10 s). */
  remoteDialTimeoutMs?: number;
  /** Days the remote-access audit log keeps ended sessions (default 90; 0 forever). */
  auditRetentionDays?: number;
  /**
   * Folder of the built web dashboard, served at `/` (default: packages/dashboard/dist/app of this repository); without
   * an index.html there, `/` says the dashboard is not built.
   */
  dashboardDir?: string;
  /** Delta computation (deltas/): concurrency (default 1), largest layer in bytes (default 4 GiB), pending wait. */
  deltas?: { concurrency?: number; maxLayerBytes?: number; retryAfterMs?: number };
  /** How often each server node evaluates the running rollouts (default 1 s). */
  rolloutIntervalMs?: number;
  /** How often every connected device's revisions are compared again, the safety net for a lost notice (60 s). */
  targetSweepMs?: number;
}

export const DEFAULT_DISK_MIN_FREE_BYTES = 100 * 1024 * 1024;

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
  const httpLimits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...options.http };
  const frontDoor: FrontDoor = {};
  const app = Fastify({
    serverFactory: httpServerFactory(httpLimits, frontDoor, options.tls),
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
  const deviceChanges = new DeviceChanges(db, {
    onError: (error, what) => app.log.error({ err: error }, `${what} failed`),
  });
  // Children made once: labelling a counter on every poll hashes its labels every time.
  const pollCounts = {
    hit: metrics.pollCache.labels({ result: 'hit' }),
    miss: metrics.pollCache.labels({ result: 'miss' }),
    bypass: metrics.pollCache.labels({ result: 'bypass' }),
  };
  const pollCache = new PollCache(createPollLookup(options.database), {
    count: (result) => pollCounts[result].inc(),
  });
  const ctx: AppContext = {
    db,
    dialect: options.database.dialect,
    publicUrl: options.publicUrl.replace(/\/+$/, ''),
    nodeUrl: (options.nodeUrl ?? options.publicUrl).replace(/\/+$/, ''),
    metrics,
    targetStates: new TargetStates(db, devicePartReader(options.database)),
    deviceLookup: pollCache.get,
    deviceChanges,
    rollouts: new RolloutEngine(db, deviceChanges, {
      ...(options.rolloutIntervalMs === undefined ? {} : { intervalMs: options.rolloutIntervalMs }),
      onError: (error, what) => app.log.error({ err: error }, `${what} failed`),
    }),
    routes: [],
    ...(options.tls?.ca === undefined ? {} : { rootCa: options.tls.ca }),
  };
  const lastSeen = new LastSeenTracker(db, undefined, undefined, (ids) => deviceChanges.changed(ids));
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') ctx.routes.push({ method, url: route.url });
  });
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
  registerErrorHandling(app);
  // First, so the not-found handler it sets is the one every scope registered later inherits.
  await registerDashboard(app, options.dashboardDir ?? DEFAULT_DASHBOARD_DIR, apiNotFound);
  registerRequestTimeout(app, httpLimits.requestTimeoutMs);
  const disk = new DiskHealth(options.dataDir, options.diskMinFreeBytes ?? DEFAULT_DISK_MIN_FREE_BYTES);
  app.addHook('onError', async (_request, _reply, error) => {
    if (isNoSpaceError(error)) await disk.noteNoSpace(error);
  });
  registerMetricsHooks(app, metrics);
  const guesses = new GuessLimiter({ ...DEFAULT_GUESS_LIMITS, ...options.guessLimits });
  installGuessLimiter(app, guesses);
  const userStreams = installUserStreams(app);
  app.get('/healthz', async (_request, reply) => {
    try {
      await sql`select 1`.execute(db);
    } catch {
      return reply.status(503).send(new FlotillaError('UNAVAILABLE', 'the database does not answer').toBody());
    }
    const space = await disk.status();
    if (!space.ok)
      return reply.status(503).send(
        new FlotillaError('STORAGE_LOW', space.reason ?? 'storage is low', {
          details: { freeBytes: space.freeBytes, minFreeBytes: space.minFreeBytes },
        }).toBody(),
      );
    return { status: 'ok' };
  });
  registerAuthRoutes(app, ctx);
  registerOrganizationRoutes(app, ctx);
  registerFleetRoutes(app, ctx);
  registerDeviceUserRoutes(app, ctx);
  registerVariableRoutes(app, ctx);
  registerDeviceRoutes(app, ctx, lastSeen);
  registerOsRoutes(app);
  registerODataRoutes(app, ctx);
  // Server nodes sharing a PostgreSQL database tell each other about logs and actions; SQLite has one node.
  const { postgresUrl } = options.database;
  const bus: EventBus = postgresUrl
    ? new PostgresBus(postgresUrl, db, app.log)
    : new SingleNodeBus(options.database.targetChanges);
  await bus.start();
  const stopRelaying = userStreams.connect(bus);
  const stopChanges = deviceChanges.connect(bus);
  const stopPollCache = pollCache.connect(bus);
  app.addHook('onClose', async () => {
    stopRelaying();
    stopChanges();
    stopPollCache();
    await deviceChanges.close();
    await bus.close();
  });
  registerFleetEventRoutes(app, ctx);
  const logStore = new LogStore(options.database, {
    retention: options.logRetention,
    onPruneError: (error) => app.log.error({ err: error }, 'pruning log lines failed'),
  });
  registerLogRoutes(app, ctx, logStore, new LogHub(), bus);
  const connections = new ConnectionHub();
  registerActionRoutes(app, ctx, connections, bus);
  const broker = new StreamBroker({
    db,
    hub: connections,
    bus,
    nodeUrl: () => ctx.nodeUrl,
    log: app.log,
    ...(options.remoteDialTimeoutMs === undefined ? {} : { dialTimeoutMs: options.remoteDialTimeoutMs }),
  });
  const publicUrls = new PublicUrls({
    db,
    broker,
    publicUrl: () => ctx.publicUrl,
    domain: options.publicUrlDomain,
    log: app.log,
  });
  // WebSocket routes share one scope: the plugin's upgrade listener and its per-request hooks stay off the others.
  await app.register(async (scope) => {
    // No compression (ws's default, said outright): it would give each connection a zlib context of its own.
    await scope.register(websocket, { options: { maxPayload: 1024 * 1024, perMessageDeflate: false } });
    registerDeviceConnection(scope, ctx, connections, bus, lastSeen, options.targetSweepMs);
    registerRemoteAccessRoutes(scope, ctx, broker, publicUrls);
  });
  installRemoteAccess(app, ctx, broker, bus, options.auditRetentionDays ?? 90);
  frontDoor.route = publicUrls;
  const registryStorage = await registerFlotillaRegistry(app, {
    db,
    limiter: guesses,
    storageDir: options.registryDir,
    publicUrl: () => ctx.publicUrl,
    gcIntervalMs: options.registryGcIntervalMs,
    space: disk,
    limits: { maxUploadBytes: options.registryMaxUploadBytes, quotaBytes: options.registryQuotaBytes },
  });
  // After the registry: a release shows the size of its images as the registry's storage holds them.
  registerReleaseRoutes(app, ctx, new ImageSizes(registryStorage));
  await installDeltas(app, ctx, registryStorage, options.deltas);
  registerOsReleaseRoutes(app, ctx, registryStorage);
  disk.start(options.diskCheckIntervalMs ?? 30_000, app.log);
  app.addHook('onClose', async () => disk.close());
  const stopReleaseTimeout = scheduleReleaseTimeout(
    db,
    options.releaseTimeoutMs ?? DEFAULT_RELEASE_TIMEOUT_MS,
    app.log,
  );
  app.addHook('onClose', stopReleaseTimeout);
  registerRolloutRoutes(app, ctx);
  registerUpdateWindowRoutes(app, ctx);
  ctx.rollouts.start();
  app.addHook('onClose', async () => ctx.rollouts.stop());
  registerOpenApi(app, db);
  app.addHook('onClose', async () => {
    await lastSeen.close();
  });
  app.decorate('flotilla', ctx);
  // decorate() adds the property at runtime; TypeScript cannot see it without module augmentation.
  return app as FastifyInstance as FlotillaApp;
}
