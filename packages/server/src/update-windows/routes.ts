import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { toDevice } from '../devices/device-view.js';
import { visibleDevice } from '../devices/devices.js';
import { toFleet, visibleFleet } from '../fleets/fleets.js';
import { serve } from '../http/serve.js';
import { setDeviceUpdateWindow, setFleetUpdateWindow } from './update-windows.js';

/** Maintenance windows of fleets and devices; writes are refused to observers like every write route (serve.ts). */
export function registerUpdateWindowRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db, deviceChanges } = ctx;

  serve(app, db, R.setFleetUpdateWindow, async ({ user, params, body }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    await setFleetUpdateWindow(db, fleet.id, body);
    deviceChanges.fleetChanged(fleet.id);
    return toFleet(db, await visibleFleet(db, user, params.slug));
  });
  serve(app, db, R.clearFleetUpdateWindow, async ({ user, params }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    await setFleetUpdateWindow(db, fleet.id, null);
    deviceChanges.fleetChanged(fleet.id);
  });

  serve(app, db, R.setDeviceUpdateWindow, async ({ user, params, body }) => {
    const device = await visibleDevice(db, user, params.uuid);
    await setDeviceUpdateWindow(db, device.id, body);
    deviceChanges.changed([device.id]);
    return toDevice(db, await visibleDevice(db, user, device.uuid));
  });
  serve(app, db, R.clearDeviceUpdateWindow, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    await setDeviceUpdateWindow(db, device.id, null);
    deviceChanges.changed([device.id]);
  });
}
