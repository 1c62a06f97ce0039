import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { visibleFleet } from '../fleets/fleets.js';
import { EventStreams } from '../http/event-stream.js';
import { HIJACKED, serve } from '../http/serve.js';
import type { DeviceEvent } from './device-changes.js';

/**
 * `GET /api/v1/fleets/:slug/events`: Server-Sent Events of the fleet's devices (events/device-changes.ts), the live
 * feed of the dashboard. `event: device` with a Device, `event: device-removed` with `{uuid}`, `: heartbeat`
 * comments; the stream ends when the credential is revoked or the fleet is no longer visible (auth/user-streams.ts),
 * when news may have been missed (the client reconnects and refetches), and when the server closes.
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
      else stream.write(`event: device-removed\ndata: ${JSON.stringify({ uuid: event.uuid })}\n\n`);
    });
    stream.write(': following\n\n');
    return HIJACKED;
  });
}
