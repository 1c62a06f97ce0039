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
  const deployed = (fleetId: number, releaseId: number) => {
    ctx.deviceChanges.fleetChanged(fleetId);
    // Never throws (failures are logged): a delta not computed ahead is computed when a device asks.
    void ctx.deltas?.precompute(fleetId, releaseId);
  };
  serve(app, db, R.listFleetReleases, async ({ user, params }) => ({
    items: await listReleases(db, sizes, (await visibleFleet(db, user, params.slug)).id),
  }));
  // A release that becomes successful may be the fleet's new target: its devices' live feeds hear of it.
  serve(app, db, R.createRelease, async ({ user, params, body }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    const release = await createRelease(db, sizes, fleet.id, { ...body, createdBy: user.userId });
    if (release.status === 'success') deployed(fleet.id, release.id);
    return release;
  });
  serve(app, db, R.getRelease, async ({ user, params }) =>
    toRelease(db, sizes, await visibleRelease(db, user, params.ref)),
  );
  serve(app, db, R.updateRelease, async ({ user, params, body }) => {
    const row = await visibleRelease(db, user, params.ref);
    const release = await updateRelease(db, sizes, row, body);
    if (row.status !== 'success' && release.status === 'success') deployed(row.fleet_id, release.id);
    return release;
  });
}
