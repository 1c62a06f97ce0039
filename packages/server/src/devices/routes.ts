import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { UserPrincipal } from '../auth/principal.js';
import type { AppContext } from '../context.js';
import { serve } from '../http/serve.js';
import { listDevices } from './device-list.js';
import { toDevice } from './device-view.js';
import { deleteDevice, updateDevice, visibleDevice } from './devices.js';

/** Devices as users see them; their variables and tags are in variables/, their actions in actions/. */
export function registerDeviceUserRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db, deviceChanges } = ctx;
  const deviceOf = (user: UserPrincipal, params: { uuid: string }) => visibleDevice(db, user, params.uuid);

  serve(app, db, R.listDevices, async ({ user, query }) => listDevices(db, ctx.dialect, user, query));

  serve(app, db, R.getDevice, async ({ user, params }) => toDevice(db, await deviceOf(user, params)));

  serve(app, db, R.updateDevice, async ({ user, params, body }) => {
    const device = await deviceOf(user, params);
    const { device: updated, movedFrom } = await updateDevice(db, user, device.uuid, body);
    deviceChanges.changed([device.id]);
    if (movedFrom !== null) deviceChanges.removed([{ fleetId: movedFrom, uuid: device.uuid }]);
    return updated;
  });

  serve(app, db, R.deleteDevice, async ({ user, params }) => {
    const device = await deviceOf(user, params);
    await deleteDevice(db, user, device.uuid);
    deviceChanges.removed([{ fleetId: device.fleet_id, uuid: device.uuid }]);
    // Its shells, tunnels and public-URL connections end at once, on every node.
    app.remoteAccess.endDeviceStreams(device.id, null, 'device-deleted');
  });
}
