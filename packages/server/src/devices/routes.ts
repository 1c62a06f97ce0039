import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import type { UserPrincipal } from '../auth/principal.js';
import { serve } from '../http/serve.js';
import {
  deleteConfig,
  deleteEnv,
  deleteTag,
  listConfig,
  listEnv,
  listTags,
  setConfig,
  setEnv,
  setTag,
} from '../variables/variables.js';
import { deleteDevice, listDevices, toDevice, updateDevice, visibleDevice } from './devices.js';

export function registerDeviceUserRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const deviceOf = (user: UserPrincipal, params: { uuid: string }) => visibleDevice(db, user, params.uuid);
  const owner = async (user: UserPrincipal, params: { uuid: string }) => {
    const d = await deviceOf(user, params);
    return { fleetId: d.fleet_id, deviceId: d.id };
  };

  serve(app, db, R.listDevices, async ({ user, query }) => ({ items: await listDevices(db, user, query.fleet) }));

  serve(app, db, R.getDevice, async ({ user, params }) => toDevice(db, await deviceOf(user, params)));

  serve(app, db, R.updateDevice, async ({ user, params, body }) => {
    const device = await deviceOf(user, params);
    return updateDevice(db, user, device.uuid, body);
  });

  serve(app, db, R.deleteDevice, async ({ user, params }) => {
    const device = await deviceOf(user, params);
    await deleteDevice(db, user, device.uuid);
  });

  serve(app, db, R.listDeviceEnv, async ({ user, params }) => ({
    items: await listEnv(db, await owner(user, params)),
  }));
  serve(app, db, R.listDeviceConfig, async ({ user, params }) => ({
    items: await listConfig(db, await owner(user, params)),
  }));
  serve(app, db, R.listDeviceTags, async ({ user, params }) => ({
    items: await listTags(db, (await deviceOf(user, params)).id),
  }));
  for (const route of [R.setDeviceEnv, R.putDeviceEnv])
    serve(app, db, route, async ({ user, params, body }) => setEnv(db, await owner(user, params), body));
  for (const route of [R.setDeviceConfig, R.putDeviceConfig])
    serve(app, db, route, async ({ user, params, body }) => setConfig(db, await owner(user, params), body));
  for (const route of [R.setDeviceTag, R.putDeviceTag])
    serve(app, db, route, async ({ user, params, body }) =>
      setTag(db, (await deviceOf(user, params)).id, body.key, body.value),
    );
  serve(app, db, R.deleteDeviceEnv, async ({ user, params, query }) => {
    await deleteEnv(db, await owner(user, params), params.name, query.service);
  });
  serve(app, db, R.deleteDeviceConfig, async ({ user, params }) => {
    await deleteConfig(db, await owner(user, params), params.name);
  });
  serve(app, db, R.deleteDeviceTag, async ({ user, params }) => {
    await deleteTag(db, (await deviceOf(user, params)).id, params.name);
  });
}
