import {
  DEVICE_ROUTES,
  FlotillaError,
  USER_ROUTES as R,
  deviceUuidSchema,
  streamIdSchema,
  type RemoteSessionKind,
  type StreamRequest,
} from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { requireRemoteAccess, requireUser, userFromCredential, type UserPrincipal } from '../auth/principal.js';
import { getUser } from '../auth/users.js';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import { visibleDevice } from '../devices/devices.js';
import { parse } from '../http/parse.js';
import { serve } from '../http/serve.js';
import type { PublicUrls } from './public-urls.js';
import { listSessions } from './sessions.js';
import type { OpenRequest, StreamBroker } from './stream-broker.js';

const streamParams = z.object({ uuid: deviceUuidSchema, id: streamIdSchema });

/** A device the user may reach remotely, and the organization that decides it. */
async function reachableDevice(ctx: AppContext, user: UserPrincipal, ref: string) {
  const device = await visibleDevice(ctx.db, user, ref);
  const fleet = await ctx.db
    .selectFrom('fleets')
    .select('organization_id')
    .where('id', '=', device.fleet_id)
    .executeTakeFirstOrThrow();
  requireRemoteAccess(user, fleet.organization_id);
  return { device, organizationId: fleet.organization_id };
}

/**
 * Remote access routes: the user's WebSockets (shell, tunnel), the device's stream dial, public URL switches and
 * the audit log. Registered in the scope that has the WebSocket plugin.
 */
export function registerRemoteAccessRoutes(
  app: FastifyInstance,
  ctx: AppContext,
  broker: StreamBroker,
  publicUrls: PublicUrls,
): void {
  const { db } = ctx;

  // The device's half of a stream it was asked for.
  app.get(
    DEVICE_ROUTES.stream.path,
    {
      websocket: true,
      preValidation: async (request) => {
        const keyHash = presentedKeyHash(request);
        const { uuid, id } = parse(streamParams, request.params);
        const device = await authenticateDevice(ctx.deviceLookup, uuid, keyHash);
        Object.assign(request, { dial: { device: { id: device.id, uuid }, id } });
      },
    },
    (socket: WebSocket, request: FastifyRequest) => {
      const { dial } = request as unknown as { dial: { device: { id: number; uuid: string }; id: string } };
      void broker
        .deviceDialed(dial.device, dial.id, socket, request.headers.authorization ?? '')
        .catch((error: unknown) => {
          request.log.error({ err: error }, 'pairing a device stream failed');
          socket.terminate();
        });
    },
  );

  /** A user WebSocket route: authenticated, validated and authorized before the upgrade (plain HTTP errors). */
  const userStream = (
    route: typeof R.deviceShell | typeof R.deviceTunnel,
    kind: RemoteSessionKind,
    toRequest: (query: never) => StreamRequest,
  ) => {
    app.route({
      method: 'GET',
      url: route.path,
      preValidation: async (request) => {
        const user = await requireUser(db, request, [ctx.publicUrl]);
        const params = parse(route.params, request.params);
        const query = parse(route.query, request.query);
        const { device, organizationId } = await reachableDevice(ctx, user, params.uuid);
        const open: OpenRequest = {
          organizationId,
          device: { id: device.id, uuid: device.uuid, name: device.name },
          user: { id: user.userId, username: (await getUser(db, user.userId)).username },
          kind,
          request: toRequest(query as never),
          remoteAddress: request.ip,
        };
        Object.assign(request, { open, user });
      },
      handler: async () => {
        throw new FlotillaError('VALIDATION_FAILED', `${route.path} is a WebSocket: connect with an upgrade`);
      },
      wsHandler: (socket: WebSocket, request: FastifyRequest) => {
        const { open, user } = request as unknown as { open: OpenRequest; user: UserPrincipal };
        void broker
          .relayUser(socket, open, (end) =>
            // INVARIANT: the stream ends as soon as the credential that opened it is deleted, or the user may no
            // longer reach the device (membership removed, role lowered, device gone).
            app.userStreams.watch({
              userId: user.userId,
              credential: user.credential,
              stillAllowed: async () => {
                const fresh = await userFromCredential(db, user.credential);
                if (!fresh) return false;
                return reachableDevice(ctx, fresh, open.device.uuid).then(
                  () => true,
                  () => false,
                );
              },
              end,
            }),
          )
          .catch((error: unknown) => request.log.error({ err: error }, 'a remote stream failed'));
      },
    });
  };

  userStream(R.deviceShell, 'shell', (query: z.output<typeof R.deviceShell.query>) => ({
    kind: 'shell',
    tty: query.tty === '1',
    ...(query.service ? { service: query.service } : {}),
    ...(query.command ? { command: query.command } : {}),
    ...(query.cols ? { cols: query.cols } : {}),
    ...(query.rows ? { rows: query.rows } : {}),
  }));
  userStream(R.deviceTunnel, 'tunnel', (query: z.output<typeof R.deviceTunnel.query>) => ({
    kind: 'tcp',
    port: query.port,
    ...(query.service ? { service: query.service } : {}),
  }));

  const publicUrlOf = (device: { uuid: string; public_url_port: number | null }) => ({
    enabled: device.public_url_port !== null,
    port: device.public_url_port,
    url: device.public_url_port === null ? null : publicUrls.urlFor(device.uuid),
  });

  serve(app, db, R.getDevicePublicUrl, async ({ user, params }) =>
    publicUrlOf(await visibleDevice(db, user, params.uuid)),
  );

  serve(app, db, R.enableDevicePublicUrl, async ({ user, params, body }) => {
    const { device } = await reachableDevice(ctx, user, params.uuid);
    await db.updateTable('devices').set({ public_url_port: body.port }).where('id', '=', device.id).execute();
    // Connections through the old port end: visitors reconnect to the new one.
    if (device.public_url_port !== null && device.public_url_port !== body.port)
      broker.endDeviceStreams(device.id, 'public-url', 'disabled');
    return publicUrlOf({ uuid: device.uuid, public_url_port: body.port });
  });

  serve(app, db, R.disableDevicePublicUrl, async ({ user, params }) => {
    const { device } = await reachableDevice(ctx, user, params.uuid);
    await db.updateTable('devices').set({ public_url_port: null }).where('id', '=', device.id).execute();
    // INVARIANT: after the switch is off, no connection through it stays open, on any node.
    broker.endDeviceStreams(device.id, 'public-url', 'disabled');
  });

  serve(app, db, R.listRemoteSessions, async ({ user, query }) => ({ items: await listSessions(db, user, query) }));
}
