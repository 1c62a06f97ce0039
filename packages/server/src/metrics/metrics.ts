import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FastifyInstance } from 'fastify';
import type { Db } from '../db/database.js';
import { ONLINE_WINDOW_MS } from '../fleets/fleets.js';

/** One registry per app instance, so several in-process servers (tests) do not share counters. */
export interface Metrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route'>;
  targetStateCache: Counter<'result'>;
  pollCache: Counter<'result'>;
  /** Delta asks by answer: hit (ready), pending (a miss being computed), unavailable (a miss: the device pulls). */
  deltaRequests: Counter<'result'>;
  deltaComputations: Counter<'result'>;
  /** What devices reported: applied, or fallback (they pulled instead). */
  deltaOutcomes: Counter<'outcome'>;
  deltaBytesDownloaded: Counter;
  /** Per applied delta, what a plain pull of the same layers would have downloaded minus the delta's bytes. */
  deltaBytesSaved: Counter;
}

export function createMetrics(db: Db, defaults = false): Metrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: 'flotilla_http_requests_total',
    help: 'HTTP requests answered',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'flotilla_http_request_duration_seconds',
    help: 'Time to answer HTTP requests',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const targetStateCache = new Counter({
    name: 'flotilla_target_state_cache_total',
    help: 'Target state lookups by cache result',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const pollCache = new Counter({
    name: 'flotilla_poll_cache_total',
    help: 'Target-state poll lookups: hit (memory), miss (database), bypass (database: the server bus is not listening)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const deltaRequests = new Counter({
    name: 'flotilla_delta_requests_total',
    help: 'Delta requests by answer: hit, pending (miss, being computed), unavailable (miss, the device pulls)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const deltaComputations = new Counter({
    name: 'flotilla_delta_computations_total',
    help: 'Delta computations by result: ready, impossible (recorded; devices pull), error (retried when asked)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const deltaOutcomes = new Counter({
    name: 'flotilla_delta_outcomes_total',
    help: 'Deltas devices applied, or fell back from to a plain pull',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const deltaBytesDownloaded = new Counter({
    name: 'flotilla_delta_downloaded_bytes_total',
    help: 'Delta bytes devices reported downloading',
    registers: [registry],
  });
  const deltaBytesSaved = new Counter({
    name: 'flotilla_delta_saved_bytes_total',
    help: 'Bytes applied deltas saved against a plain pull of the same layers',
    registers: [registry],
  });
  new Gauge({
    name: 'flotilla_devices_online',
    help: `Devices seen within the last ${ONLINE_WINDOW_MS / 60_000} minutes`,
    registers: [registry],
    async collect() {
      const since = new Date(Date.now() - ONLINE_WINDOW_MS).toISOString();
      const row = await db
        .selectFrom('devices')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('last_seen_at', '>', since)
        .executeTakeFirst();
      this.set(Number(row?.n ?? 0));
    },
  });
  return {
    registry,
    requests,
    duration,
    targetStateCache,
    pollCache,
    deltaRequests,
    deltaComputations,
    deltaOutcomes,
    deltaBytesDownloaded,
    deltaBytesSaved,
  };
}

export function registerMetricsHooks(app: FastifyInstance, metrics: Metrics): void {
  // A callback hook (every request runs it; an async one costs a promise and a microtask turn each).
  app.addHook('onResponse', (request, reply, done) => {
    // The route template, not the URL: UUIDs in paths would make one series per device.
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
  app.get('/metrics', async (_request, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
}
