import {
  DEVICE_ROUTES,
  FlotillaError,
  deviceUuidSchema,
  keyExchangeRequestSchema,
  registerRequestSchema,
  stateReportSchema,
  tagsReportSchema,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { bearerToken } from '../auth/keys.js';
import { parse } from '../http/parse.js';
import { setTag } from '../variables/variables.js';
import { authenticateDevice, presentedKeyHash, requireOwnDevice } from './device-auth.js';
import type { LastSeenTracker } from './last-seen.js';
import { exchangeDeviceKey, registerDevice, requireProvisioningKey } from './register.js';
import { applyReport } from './report.js';
import { matchesEtag } from './target-state.js';

const uuidParams = z.object({ uuid: deviceUuidSchema });
const idParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,12}$/)
    .transform(Number),
});

/** The balena-Supervisor-compatible device endpoints (see docs/protocol.md). */
export function registerDeviceRoutes(app: FastifyInstance, ctx: AppContext, lastSeen: LastSeenTracker): void {
  const { db } = ctx;

  app.post(DEVICE_ROUTES.register.path, async (request, reply) => {
    const key = bearerToken(request.headers.authorization);
    if (!key) throw new FlotillaError('UNAUTHENTICATED', 'missing Authorization: Bearer <provisioning key>');
    const fleetId = await requireProvisioningKey(db, key);
    const body = parse(registerRequestSchema, request.body);
    const registered = await registerDevice(db, fleetId, body);
    ctx.deviceChanges.changed([registered.id]);
    return reply.status(201).send(registered);
  });

  app.post(DEVICE_ROUTES.keyExchange.path, async (request, reply) => {
    const key = bearerToken(request.headers.authorization);
    if (!key) throw new FlotillaError('UNAUTHENTICATED', 'missing Authorization: Bearer <provisioning key>');
    const fleetId = await requireProvisioningKey(db, key);
    const { id } = parse(idParams, request.params);
    const body = parse(keyExchangeRequestSchema, request.body);
    await exchangeDeviceKey(db, fleetId, id, body.apiKey);
    // balena's API answers with the key as a JSON string.
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(body.apiKey));
  });

  const stateHits = ctx.metrics.targetStateCache.labels({ result: 'hit' });
  const stateMisses = ctx.metrics.targetStateCache.labels({ result: 'miss' });
  app.get(DEVICE_ROUTES.targetState.path, async (request, reply) => {
    const keyHash = presentedKeyHash(request);
    const { uuid } = parse(uuidParams, request.params);
    // No state kept for it (a first poll): the lookup reads the device's part of it in the same statement.
    const row = await ctx.deviceLookup(uuid, !ctx.targetStates.cache.has(uuid));
    requireOwnDevice(row, keyHash);
    if (!row) throw new FlotillaError('UNAUTHENTICATED', 'the key is not valid for this device');
    lastSeen.seen(row.id);
    const { entry, hit } = await ctx.targetStates.for(uuid, row);
    (hit ? stateHits : stateMisses).inc();
    void reply.header('etag', entry.etag).header('cache-control', 'no-cache');
    if (matchesEtag(request.headers['if-none-match'], entry.etag)) return reply.status(304).send();
    return reply.header('content-type', 'application/json; charset=utf-8').send(entry.body);
  });

  app.patch(DEVICE_ROUTES.reportState.path, async (request) => {
    const keyHash = presentedKeyHash(request);
    const report = parse(stateReportSchema, request.body);
    for (const [uuid, deviceReport] of Object.entries(report)) {
      const device = await authenticateDevice(ctx.deviceLookup, uuid, keyHash);
      await applyReport(db, device.id, deviceReport);
      lastSeen.written(device.id);
      ctx.deviceChanges.changed([device.id]);
      await ctx.rollouts.noteReport(device.id, deviceReport);
    }
    return {};
  });

  app.patch(DEVICE_ROUTES.reportTags.path, async (request) => {
    const keyHash = presentedKeyHash(request);
    const report = parse(tagsReportSchema, request.body);
    for (const [uuid, tags] of Object.entries(report)) {
      const device = await authenticateDevice(ctx.deviceLookup, uuid, keyHash);
      for (const [key, value] of Object.entries(tags)) await setTag(db, device.id, key, value);
      ctx.deviceChanges.changed([device.id]);
    }
    return {};
  });
}
