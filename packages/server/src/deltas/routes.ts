import {
  DEVICE_ROUTES,
  type DeltaAnswer,
  FlotillaError,
  deltaOutcomeSchema,
  deltaRequestSchema,
  deviceUuidSchema,
  DELTA_FORMAT,
  path,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import { parse } from '../http/parse.js';
import { sendRanged } from '../http/ranged-file.js';
import type { DeltaService } from './delta-service.js';
import type { DeltaStore } from './delta-store.js';
import { recordUpdateBytes } from './update-bytes.js';

const uuidParams = z.object({ uuid: deviceUuidSchema });
const id = z
  .string()
  .regex(/^[1-9]\d{0,11}$/)
  .transform(Number);
const downloadParams = z.object({
  uuid: deviceUuidSchema,
  from: id,
  to: id,
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});

/** Flotilla's delta routes for devices (docs/protocol.md, Deltas); each authenticates the device by its key. */
export function registerDeltaRoutes(
  app: FastifyInstance,
  ctx: AppContext,
  deltas: DeltaService,
  store: DeltaStore,
): void {
  const device = async (request: Parameters<typeof presentedKeyHash>[0], uuid: string) =>
    authenticateDevice(ctx.deviceLookup, uuid, presentedKeyHash(request));

  app.post(DEVICE_ROUTES.deltaRequest.path, async (request, reply) => {
    const { uuid } = parse(uuidParams, request.params);
    const { fleet_id } = await device(request, uuid);
    const body = parse(deltaRequestSchema, request.body);
    const found = await deltas.request(fleet_id, body.fromImageId, body.toImageId);
    if (found.status === 'pending') return reply.status(202).send(found satisfies DeltaAnswer);
    const { ok: _ok, ...pair } = found.pair;
    const answer: DeltaAnswer = {
      status: 'ready',
      delta: {
        format: DELTA_FORMAT,
        ...pair,
        path: path(DEVICE_ROUTES.deltaDownload.path, {
          uuid,
          from: body.fromImageId,
          to: body.toImageId,
          digest: pair.digest,
        }),
      },
    };
    return answer;
  });

  app.get(DEVICE_ROUTES.deltaDownload.path, async (request, reply) => {
    const params = parse(downloadParams, request.params);
    const { fleet_id } = await device(request, params.uuid);
    const pair = await deltas.readyPair(fleet_id, params.from, params.to);
    const hex = params.digest.slice('sha256:'.length);
    const size = pair?.digest === params.digest ? await store.blobSize(hex) : undefined;
    if (size === undefined)
      throw new FlotillaError('DELTA_NOT_FOUND', 'this delta is not (or no longer) the one for these images');
    return sendRanged(request, reply, {
      size,
      etag: `"${params.digest}"`,
      read: (range) => store.readBlob(hex, range),
    });
  });

  app.post(DEVICE_ROUTES.deltaOutcome.path, async (request, reply) => {
    const { uuid } = parse(uuidParams, request.params);
    const own = await device(request, uuid);
    const deviceId = own.id;
    const outcome = parse(deltaOutcomeSchema, request.body);
    await recordUpdateBytes(ctx.db, own, outcome);
    const { metrics } = ctx;
    metrics.deltaOutcomes.inc({ outcome: outcome.outcome });
    metrics.deltaBytesDownloaded.inc(outcome.bytesDownloaded);
    if (outcome.outcome === 'applied')
      metrics.deltaBytesSaved.inc(Math.max(0, outcome.pullBytes - outcome.bytesDownloaded));
    request.log.info({ deviceId, ...outcome }, 'delta outcome reported');
    return reply.status(204).send();
  });
}
