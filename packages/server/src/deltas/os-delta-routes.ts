import {
  DEVICE_ROUTES,
  FlotillaError,
  type OsDeltaAnswer,
  deviceUuidSchema,
  osDeltaRequestSchema,
  path,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import { parse } from '../http/parse.js';
import { sendRanged } from '../http/ranged-file.js';
import type { DeltaStore } from './delta-store.js';
import type { OsDeltaService } from './os-delta-service.js';

const hex = z.string().regex(/^[0-9a-f]{64}$/);
const uuidParams = z.object({ uuid: deviceUuidSchema });
const downloadParams = z.object({
  uuid: deviceUuidSchema,
  from: hex,
  to: hex,
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
});

/** The OS delta routes for devices (docs/protocol.md, OS deltas); each authenticates the device by its key. */
export function registerOsDeltaRoutes(
  app: FastifyInstance,
  ctx: AppContext,
  deltas: OsDeltaService,
  store: DeltaStore,
): void {
  const device = async (request: Parameters<typeof presentedKeyHash>[0], uuid: string) =>
    authenticateDevice(ctx.deviceLookup, uuid, presentedKeyHash(request));

  app.post(DEVICE_ROUTES.osDeltaRequest.path, async (request, reply) => {
    const { uuid } = parse(uuidParams, request.params);
    const own = await device(request, uuid);
    const body = parse(osDeltaRequestSchema, request.body);
    const found = await deltas.request(own.id, body);
    if (found.status === 'pending') return reply.status(202).send(found satisfies OsDeltaAnswer);
    const { ok: _ok, ...pair } = found.pair;
    const answer: OsDeltaAnswer = {
      status: 'ready',
      delta: {
        ...pair,
        path: path(DEVICE_ROUTES.osDeltaDownload.path, {
          uuid,
          from: pair.sourceSha256,
          to: pair.targetSha256,
          digest: pair.digest,
        }),
      },
    };
    return answer;
  });

  app.get(DEVICE_ROUTES.osDeltaDownload.path, async (request, reply) => {
    const params = parse(downloadParams, request.params);
    const own = await device(request, params.uuid);
    const pair = await deltas.readyPair(own.id, params.from, params.to);
    const digestHex = params.digest.slice('sha256:'.length);
    const size = pair?.digest === params.digest ? await store.blobSize(digestHex) : undefined;
    if (size === undefined)
      throw new FlotillaError('DELTA_NOT_FOUND', 'this delta is not (or no longer) the one for these OS images');
    return sendRanged(request, reply, {
      size,
      etag: `"${params.digest}"`,
      read: (range) => store.readBlob(digestHex, range),
    });
  });
}
