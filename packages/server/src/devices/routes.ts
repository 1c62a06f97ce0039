import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { UserPrincipal } from '../auth/principal.js';
import type { AppContext } from '../context.js';
import { serve } from '../http/serve.js';
import { deleteDevice, listDevices, toDevice, updateDevice, visibleDevice } from './devices.js';

/** Devices as users see them; their variables and tags are in variables/, their actions in actions/. */
export function registerDeviceUserRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const deviceOf = (user: UserPrincipal, params: { uuid: string }) => visibleDevice(db, user, params.uuid);

  serve(app, db, R.listDevices, async ({ user, query }) => {
    // TODO(dashboard server helper): search, status, release, sort, limit, offset and a true total.
    const items = await listDevices(db, user, query.fleet);
    return { items, total: items.length };
  });

  serve(app, db, R.getDevice, async ({ user, params }) => toDevice(db, await deviceOf(user, params)));

  serve(app, db, R.updateDevice, async ({ user, params, body }) => {
    const device = await deviceOf(user, params);
    return updateDevice(db, user, device.uuid, body);
  });

  serve(app, db, R.deleteDevice, async ({ user, params }) => {
    const device = await deviceOf(user, params);
    await deleteDevice(db, user, device.uuid);
    // Its shells, tunnels and public-URL connections end at once, on every node.
    app.remoteAccess.endDeviceStreams(device.id, null, 'device-deleted');
  });
}
