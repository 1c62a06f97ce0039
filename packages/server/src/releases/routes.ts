import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { visibleFleet } from '../fleets/fleets.js';
import { serve } from '../http/serve.js';
import {
  type ImageSizeReader,
  createRelease,
  listReleases,
  toRelease,
  updateRelease,
  visibleRelease,
} from './releases.js';

export function registerReleaseRoutes(app: FastifyInstance, ctx: AppContext, sizes: ImageSizeReader): void {
  const { db } = ctx;
  serve(app, db, R.listFleetReleases, async ({ user, params }) => ({
    items: await listReleases(db, sizes, (await visibleFleet(db, user, params.slug)).id),
  }));
  // A release that becomes successful may be the fleet's new target: its devices' live feeds hear of it.
  serve(app, db, R.createRelease, async ({ user, params, body }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    const release = await createRelease(db, sizes, fleet.id, { ...body, createdBy: user.userId });
    if (release.status === 'success') ctx.deviceChanges.fleetChanged(fleet.id);
    return release;
  });
  serve(app, db, R.getRelease, async ({ user, params }) =>
    toRelease(db, sizes, await visibleRelease(db, user, params.ref)),
  );
  serve(app, db, R.updateRelease, async ({ user, params, body }) => {
    const row = await visibleRelease(db, user, params.ref);
    const release = await updateRelease(db, sizes, row, body);
    if (row.status !== 'success' && release.status === 'success') ctx.deviceChanges.fleetChanged(row.fleet_id);
    return release;
  });
}
