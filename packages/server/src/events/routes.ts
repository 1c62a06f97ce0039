import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { orgIds } from '../auth/principal.js';
import type { AppContext } from '../context.js';
import { visibleFleet } from '../fleets/fleets.js';
import { EventStreams } from '../http/event-stream.js';
import { HIJACKED, serve } from '../http/serve.js';
import type { DeviceEvent } from './device-changes.js';
import { followFleetCounts } from './fleet-counts.js';

/**
 * `GET /api/v1/fleets/:slug/events`: Server-Sent Events of the fleet's devices (events/device-changes.ts), the live
 * feed of the dashboard. `event: device` with a Device, `event: device-removed` with `{uuid}`, `event: fleet-changed`
 * with `{targetRelease}`, `: heartbeat` comments; the stream ends when the credential is revoked or the fleet is no
 * longer visible (auth/user-streams.ts), when news may have been missed (the client reconnects and refetches), and
 * when the server closes.
 *
 * `GET /api/v1/fleet-counts/events`: `event: counts` with each visible fleet's device counts by status, then again
 * for a fleet whenever they move (events/fleet-counts.ts); ends as above, or when one of its fleets is deleted.
 */
export function registerFleetEventRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db, deviceChanges } = ctx;
  const streams = new EventStreams(app, db);

  serve(app, db, R.fleetEvents, async ({ user, params, request, reply }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    let unfollow = () => {};
    const stream = streams.start({
      request,
      reply,
      user,
      // INVARIANT: the user can still see this fleet (membership kept, fleet not deleted and replaced).
      stillAllowed: (fresh) =>
        visibleFleet(db, fresh, fleet.slug).then(
          (row) => row.id === fleet.id,
          () => false,
        ),
      onEnd: () => unfollow(),
    });
    unfollow = deviceChanges.follow(fleet.id, (event: DeviceEvent) => {
      if (event.type === 'lost') stream.end();
      else if (event.type === 'device') stream.write(`event: device\ndata: ${JSON.stringify(event.device)}\n\n`);
      else if (event.type === 'fleet-changed')
        stream.write(`event: fleet-changed\ndata: ${JSON.stringify({ targetRelease: event.targetRelease })}\n\n`);
      else stream.write(`event: device-removed\ndata: ${JSON.stringify({ uuid: event.uuid })}\n\n`);
    });
    stream.write(': following\n\n');
    return HIJACKED;
  });

  serve(app, db, R.fleetCountsEvents, async ({ user, request, reply }) => {
    const ids = orgIds(user);
    const fleets =
      ids.length === 0
        ? []
        : await db
            .selectFrom('fleets')
            .select(['id', 'slug'])
            .where('organization_id', 'in', ids)
            .orderBy('id')
            .execute();
    let unfollow = () => {};
    const stream = streams.start({
      request,
      reply,
      user,
      // INVARIANT: the user can still see every fleet the stream counts (a membership removed ends it).
      stillAllowed: async (fresh) => {
        const orgs = orgIds(fresh);
        if (fleets.length === 0) return true;
        if (orgs.length === 0) return false;
        const visible = await db
          .selectFrom('fleets')
          .select('id')
          .where(
            'id',
            'in',
            fleets.map((f) => f.id),
          )
          .where('organization_id', 'in', orgs)
          .execute();
        return visible.length === fleets.length;
      },
      onEnd: () => unfollow(),
    });
    stream.write(': following\n\n');
    unfollow = followFleetCounts(
      db,
      deviceChanges,
      fleets,
      (counts) => stream.write(`event: counts\ndata: ${JSON.stringify(counts)}\n\n`),
      () => stream.end(),
      (error) => request.log.error({ err: error }, 'counting the devices of followed fleets failed'),
    );
    return HIJACKED;
  });
}
