import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { UserPrincipal } from '../auth/principal.js';
import type { AppContext } from '../context.js';
import { visibleDevice } from '../devices/devices.js';
import { visibleFleet } from '../fleets/fleets.js';
import { serve } from '../http/serve.js';
import {
  deleteConfig,
  deleteEnv,
  deleteTag,
  listConfig,
  listEnv,
  listFleetTags,
  listTags,
  setConfig,
  setEnv,
  setTag,
} from './variables.js';

/** Environment and config variables of fleets and devices, and device tags (a fleet lists its devices' tags). */
export function registerVariableRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const fleetOwner = async (user: UserPrincipal, params: { slug: string }) => ({
    fleetId: (await visibleFleet(db, user, params.slug)).id,
    deviceId: null,
  });
  const deviceOf = (user: UserPrincipal, params: { uuid: string }) => visibleDevice(db, user, params.uuid);
  const deviceOwner = async (user: UserPrincipal, params: { uuid: string }) => {
    const device = await deviceOf(user, params);
    return { fleetId: device.fleet_id, deviceId: device.id };
  };

  // ---------------------------------------------------------------------------------------------------- fleets
  serve(app, db, R.listFleetEnv, async ({ user, params }) => ({
    items: await listEnv(db, await fleetOwner(user, params)),
  }));
  for (const route of [R.setFleetEnv, R.putFleetEnv])
    serve(app, db, route, async ({ user, params, body }) => setEnv(db, await fleetOwner(user, params), body));
  serve(app, db, R.deleteFleetEnv, async ({ user, params, query }) => {
    await deleteEnv(db, await fleetOwner(user, params), params.name, query.service, query.exact === '1');
  });
  serve(app, db, R.listFleetConfig, async ({ user, params }) => ({
    items: await listConfig(db, await fleetOwner(user, params)),
  }));
  for (const route of [R.setFleetConfig, R.putFleetConfig])
    serve(app, db, route, async ({ user, params, body }) => setConfig(db, await fleetOwner(user, params), body));
  serve(app, db, R.deleteFleetConfig, async ({ user, params }) => {
    await deleteConfig(db, await fleetOwner(user, params), params.name);
  });
  serve(app, db, R.listFleetTags, async ({ user, params }) => ({
    items: await listFleetTags(db, (await fleetOwner(user, params)).fleetId),
  }));

  // --------------------------------------------------------------------------------------------------- devices
  serve(app, db, R.listDeviceEnv, async ({ user, params }) => ({
    items: await listEnv(db, await deviceOwner(user, params)),
  }));
  serve(app, db, R.listDeviceConfig, async ({ user, params }) => ({
    items: await listConfig(db, await deviceOwner(user, params)),
  }));
  serve(app, db, R.listDeviceTags, async ({ user, params }) => ({
    items: await listTags(db, (await deviceOf(user, params)).id),
  }));
  for (const route of [R.setDeviceEnv, R.putDeviceEnv])
    serve(app, db, route, async ({ user, params, body }) => setEnv(db, await deviceOwner(user, params), body));
  for (const route of [R.setDeviceConfig, R.putDeviceConfig])
    serve(app, db, route, async ({ user, params, body }) => setConfig(db, await deviceOwner(user, params), body));
  for (const route of [R.setDeviceTag, R.putDeviceTag])
    serve(app, db, route, async ({ user, params, body }) => {
      const device = await deviceOf(user, params);
      const tag = await setTag(db, device.id, body.key, body.value);
      ctx.deviceChanges.changed([device.id]);
      return tag;
    });
  serve(app, db, R.deleteDeviceEnv, async ({ user, params, query }) => {
    await deleteEnv(db, await deviceOwner(user, params), params.name, query.service, query.exact === '1');
  });
  serve(app, db, R.deleteDeviceConfig, async ({ user, params }) => {
    await deleteConfig(db, await deviceOwner(user, params), params.name);
  });
  serve(app, db, R.deleteDeviceTag, async ({ user, params }) => {
    const device = await deviceOf(user, params);
    await deleteTag(db, device.id, params.name);
    ctx.deviceChanges.changed([device.id]);
  });
}
