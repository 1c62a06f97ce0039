import { API_PREFIX, updateReleaseRequestSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requireUser } from '../auth/principal.js';
import { parse } from '../http/parse.js';
import { toRelease, updateRelease, visibleRelease } from './releases.js';

const refParams = z.object({ ref: z.string().min(1).max(100) });

export function registerReleaseRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  app.get(`${API_PREFIX}/releases/:ref`, async (request) => {
    const user = await requireUser(db, request);
    return toRelease(db, await visibleRelease(db, user, parse(refParams, request.params).ref));
  });
  app.patch(`${API_PREFIX}/releases/:ref`, async (request) => {
    const user = await requireUser(db, request);
    const release = await visibleRelease(db, user, parse(refParams, request.params).ref);
    return updateRelease(db, release, parse(updateReleaseRequestSchema, request.body));
  });
}
