import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { userFromCredential } from '../auth/principal.js';
import type { AppContext } from '../context.js';
import { visibleFleet } from '../fleets/fleets.js';
import { HIJACKED, serve } from '../http/serve.js';
import type { DeviceEvent } from './device-changes.js';

const HEARTBEAT_MS = 15_000;
/**
 * Bytes a follower may leave unread before its stream is ended (it reconnects and refetches): a browser that stops
 * reading must not make this node hold the news of a 10,000-device fleet for it, again and again.
 */
const MAX_UNREAD_BYTES = 16 * 1024 * 1024;

/**
 * `GET /api/v1/fleets/:slug/events`: Server-Sent Events of the fleet's devices (events/device-changes.ts), the live
 * feed of the dashboard. `event: device` with a Device, `event: device-removed` with `{uuid}`, `: heartbeat`
 * comments; the stream ends when the credential is revoked or the fleet is no longer visible (auth/user-streams.ts),
 * when news may have been missed (the client reconnects and refetches), and when the server closes.
 */
export function registerFleetEventRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db, deviceChanges } = ctx;
  const streams = new Set<() => void>();
  // Streams end before the server closes, or close() would wait for them forever.
  app.addHook('preClose', async () => {
    for (const end of [...streams]) end();
  });

  serve(app, db, R.fleetEvents, async ({ user, params, request, reply }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const write = (text: string) => {
      raw.write(text);
      if (raw.writableLength > MAX_UNREAD_BYTES) end();
    };
    const unfollow = deviceChanges.follow(fleet.id, (event: DeviceEvent) => {
      if (event.type === 'lost') end();
      else if (event.type === 'device') write(`event: device\ndata: ${JSON.stringify(event.device)}\n\n`);
      else write(`event: device-removed\ndata: ${JSON.stringify({ uuid: event.uuid })}\n\n`);
    });
    raw.write(': following\n\n');
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), HEARTBEAT_MS);
    // INVARIANT: the stream ends as soon as the key or session that opened it is deleted, or the user can no
    // longer see the fleet (membership removed, fleet deleted).
    const unwatch = app.userStreams.watch({
      userId: user.userId,
      credential: user.credential,
      stillAllowed: async () => {
        const fresh = await userFromCredential(db, user.credential);
        if (!fresh) return false;
        return visibleFleet(db, fresh, fleet.slug).then(
          (row) => row.id === fleet.id,
          () => false,
        );
      },
      end: () => end(),
    });
    const end = () => {
      if (!streams.delete(end)) return;
      clearInterval(heartbeat);
      unfollow();
      unwatch();
      raw.end();
    };
    streams.add(end);
    request.raw.on('close', end);
    return HIJACKED;
  });
}
