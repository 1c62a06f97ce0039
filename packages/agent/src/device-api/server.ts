import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  FlotillaError,
  LOCAL_API_ROUTES,
  isErrorCode,
  serviceNameSchema,
  targetDeviceSchema,
} from '@flotilla/protocol';
import type { DeviceActions, ServiceAction } from './device-actions.js';

export interface DeviceApiOptions {
  actions: DeviceActions;
  /** The key apps get as BALENA_SUPERVISOR_API_KEY; required on every route but /ping and /v1/healthy. */
  apiKey: string;
}

const forceBody = z.looseObject({ force: z.boolean().optional() }).default({});
const appBody = z.looseObject({ appId: z.coerce.number().int().positive(), force: z.boolean().optional() });
const serviceBody = z.looseObject({
  serviceName: serviceNameSchema.optional(),
  imageId: z.number().int().optional(),
  force: z.boolean().optional(),
});
const appParams = z.object({ appId: z.coerce.number().int().positive() });
const hostConfigBody = z.looseObject({
  network: z
    .looseObject({
      hostname: z
        .string()
        .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/)
        .optional(),
    })
    .optional(),
});
/** Local mode accepts the device part of target state, bare or wrapped as `{local: …}` like the balena CLI sends. */
const localTargetBody = z.union([
  z.looseObject({ local: targetDeviceSchema }).transform((b) => b.local),
  targetDeviceSchema,
]);

function keyMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ')) return header.slice('Bearer '.length).trim();
  const query = request.query as Record<string, unknown> | undefined;
  return typeof query?.apikey === 'string' ? query.apikey : undefined;
}

/**
 * The device's local API (balena Supervisor compatible, port 48484 by default): what containers on the device and a
 * developer on the LAN use to ask the agent for things. Thin routes: validate, call DeviceActions, answer.
 */
export function buildDeviceApi(options: DeviceApiOptions): FastifyInstance {
  const { actions } = options;
  const app = Fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });
  const open = new Set<string>([LOCAL_API_ROUTES.ping.path, LOCAL_API_ROUTES.healthy.path]);

  app.addHook('onRequest', async (request) => {
    const route = request.routeOptions.url ?? '';
    if (open.has(route)) return;
    // Local mode on a development device turns API auth off, as on balenaOS; production always checks the key.
    if (actions.developmentMode() && route.startsWith('/v2/local/')) return;
    if (!keyMatches(presentedKey(request), options.apiKey))
      throw new FlotillaError('UNAUTHENTICATED', 'a valid API key is required (?apikey= or Authorization: Bearer)');
  });

  app.setErrorHandler((error: unknown, _request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof FlotillaError) return reply.status(error.status).send(error.toBody());
    if (error instanceof z.ZodError) {
      return reply.status(400).send({
        error: {
          code: 'VALIDATION_FAILED',
          message: 'invalid request',
          details: error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        },
      });
    }
    const status = (error as { statusCode?: number }).statusCode;
    const code = (error as { code?: string }).code;
    if (status === 413)
      return reply.status(413).send({ error: { code: 'PAYLOAD_TOO_LARGE', message: 'request body too large' } });
    if (status !== undefined && status >= 400 && status < 500) {
      const mapped = code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'UNSUPPORTED_MEDIA_TYPE' : 'INVALID_JSON';
      return reply.status(status === 415 ? 415 : 400).send({
        error: { code: isErrorCode(mapped) ? mapped : 'VALIDATION_FAILED', message: (error as Error).message },
      });
    }
    return reply.status(500).send({ error: { code: 'INTERNAL', message: 'internal error; see the agent log' } });
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.status(404).send({ error: { code: 'NOT_FOUND', message: 'no such route' } }),
  );

  const requireDev = () => {
    if (!actions.developmentMode())
      throw new FlotillaError('LOCAL_MODE_DISABLED', 'local mode is only available on development devices');
  };

  // ---------------------------------------------------------------------------------------------------------- v1
  app.get(LOCAL_API_ROUTES.ping.path, async (_req, reply) => reply.type('text/plain').send('OK'));
  app.get(LOCAL_API_ROUTES.healthy.path, async (_req, reply) =>
    actions.healthy() ? reply.type('text/plain').send('OK') : reply.status(500).type('text/plain').send('Unhealthy'),
  );
  app.post(LOCAL_API_ROUTES.blink.path, async (_req, reply) => {
    await actions.identify();
    return reply.type('text/plain').send('OK');
  });
  app.post(LOCAL_API_ROUTES.update.path, async (req, reply) => {
    actions.triggerUpdate(forceBody.parse(req.body ?? {}).force === true);
    return reply.status(204).send();
  });
  app.post(LOCAL_API_ROUTES.restart.path, async (req, reply) => {
    const body = appBody.parse(req.body ?? {});
    await actions.restartApp(body.appId, body.force === true);
    return reply.type('text/plain').send('OK');
  });
  app.post(LOCAL_API_ROUTES.purge.path, async (req, reply) => {
    const body = appBody.parse(req.body ?? {});
    await actions.purgeApp(body.appId, body.force === true);
    return reply.send({ Data: 'OK', Error: '' });
  });
  app.post(LOCAL_API_ROUTES.reboot.path, async (req, reply) => {
    await actions.reboot(forceBody.parse(req.body ?? {}).force === true);
    return reply.status(202).send({ Data: 'OK', Error: null });
  });
  app.post(LOCAL_API_ROUTES.shutdown.path, async (req, reply) => {
    await actions.shutdown(forceBody.parse(req.body ?? {}).force === true);
    return reply.status(202).send({ Data: 'OK', Error: null });
  });
  app.get(LOCAL_API_ROUTES.device.path, async () => {
    const d = actions.device();
    return {
      api_port: d.apiPort,
      ip_address: d.ipAddress,
      mac_address: d.macAddress,
      os_version: d.osVersion,
      supervisor_version: d.agentVersion,
      update_pending: d.updatePending,
      update_downloaded: d.updateDownloaded,
      update_failed: d.updateFailed,
      download_progress: d.downloadProgress,
      commit: d.commit,
      status: d.status,
    };
  });
  app.get(LOCAL_API_ROUTES.hostConfig.path, async () => ({ network: { hostname: actions.hostname() } }));
  app.patch(LOCAL_API_ROUTES.hostConfig.path, async (req) => {
    const body = hostConfigBody.parse(req.body ?? {});
    if (body.network?.hostname) await actions.setHostname(body.network.hostname);
    return { network: { hostname: actions.hostname() } };
  });

  // ---------------------------------------------------------------------------------------------------------- v2
  app.get(LOCAL_API_ROUTES.applicationsState.path, async () => {
    const out: Record<string, unknown> = {};
    for (const a of actions.apps()) {
      out[a.name] = {
        appId: a.appId,
        commit: a.commit,
        services: Object.fromEntries(
          a.services.map((s) => [
            s.serviceName,
            { status: s.status, releaseId: s.releaseId, downloadProgress: s.downloadProgress },
          ]),
        ),
      };
    }
    return out;
  });
  app.get(LOCAL_API_ROUTES.stateStatus.path, async () => {
    const apps = actions.apps();
    const services = apps.flatMap((a) => a.services);
    const downloads = services.map((s) => s.downloadProgress).filter((p): p is number => p !== null);
    return {
      status: 'success',
      appState: actions.applying() ? 'applying' : 'applied',
      overallDownloadProgress: downloads.length
        ? Math.round(downloads.reduce((x, y) => x + y, 0) / downloads.length)
        : null,
      containers: services.map((s) => ({
        status: s.status,
        serviceName: s.serviceName,
        appId: s.appId,
        imageId: s.imageId,
        serviceId: s.serviceId,
        containerId: s.containerId,
        createdAt: s.createdAt,
      })),
      release: apps[0]?.commit ?? null,
    };
  });
  app.get(LOCAL_API_ROUTES.version.path, async () => ({ status: 'success', version: actions.version }));

  const appAction = (action: 'restart' | 'purge') => async (req: FastifyRequest, reply: FastifyReply) => {
    const { appId } = appParams.parse(req.params);
    const body = forceBody.parse(req.body ?? {});
    if (action === 'restart') await actions.restartApp(appId, body.force === true);
    else await actions.purgeApp(appId, body.force === true);
    return reply.type('text/plain').send('OK');
  };
  app.post('/v2/applications/:appId/restart', appAction('restart'));
  app.post('/v2/applications/:appId/purge', appAction('purge'));
  for (const action of ['restart', 'stop', 'start'] as const satisfies readonly ServiceAction[]) {
    app.post(`/v2/applications/:appId/${action}-service`, async (req, reply) => {
      const { appId } = appParams.parse(req.params);
      const body = serviceBody.parse(req.body ?? {});
      const service =
        body.serviceName ??
        actions
          .apps()
          .find((a) => a.appId === appId)
          ?.services.find((s) => s.imageId === body.imageId)?.serviceName;
      if (!service)
        throw new FlotillaError('VALIDATION_FAILED', 'serviceName (or the imageId of a running service) is required');
      await actions.serviceAction(action, appId, service, body.force === true);
      return reply.type('text/plain').send('OK');
    });
  }

  // --------------------------------------------------------------------------------------------------- local mode
  app.get(LOCAL_API_ROUTES.localTargetState.path, async () => {
    requireDev();
    return { status: 'success', state: { local: actions.localTarget() ?? null } };
  });
  app.post(LOCAL_API_ROUTES.localTargetState.path, async (req) => {
    requireDev();
    actions.setLocalTarget(localTargetBody.parse(req.body));
    return { status: 'success', message: 'OK' };
  });
  app.get(LOCAL_API_ROUTES.localLogs.path, async (req, reply) => {
    requireDev();
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    const unsubscribe = actions.subscribeLogs((line) => {
      reply.raw.write(
        `${JSON.stringify({ message: line.message, timestamp: line.timestamp, isSystem: line.isSystem ?? false, isStdErr: line.isStdErr ?? false, serviceName: line.serviceName ?? null })}\n`,
      );
    });
    req.raw.on('close', unsubscribe);
  });

  return app;
}
