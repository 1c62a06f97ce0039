import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { visibleFleet } from '../fleets/fleets.js';
import { serve } from '../http/serve.js';
import { createRelease, listReleases, toRelease, updateRelease, visibleRelease } from './releases.js';

export function registerReleaseRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  serve(app, db, R.listFleetReleases, async ({ user, params }) => ({
    items: await listReleases(db, (await visibleFleet(db, user, params.slug)).id),
  }));
  serve(app, db, R.createRelease, async ({ user, params, body }) =>
    createRelease(db, (await visibleFleet(db, user, params.slug)).id, body),
  );
  serve(app, db, R.getRelease, async ({ user, params }) => toRelease(db, await visibleRelease(db, user, params.ref)));
  serve(app, db, R.updateRelease, async ({ user, params, body }) =>
    updateRelease(db, await visibleRelease(db, user, params.ref), body),
  );
}
