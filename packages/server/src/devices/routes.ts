import {
  API_PREFIX,
  setConfigVarRequestSchema,
  setEnvVarRequestSchema,
  setTagRequestSchema,
  slugSchema,
  updateDeviceRequestSchema,
} from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requireUser } from '../auth/principal.js';
import { parse } from '../http/parse.js';
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

const refParams = z.object({ uuid: z.string().min(1).max(100) });
const nameParams = z.object({ uuid: z.string().min(1).max(100), name: z.string().min(1).max(255) });
const listQuery = z.object({ fleet: slugSchema.optional() });
const serviceQuery = z.object({ service: z.string().min(1).max(63).optional() });

export function registerDeviceUserRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const base = `${API_PREFIX}/devices`;
  const deviceOf = async (request: FastifyRequest) => {
    const user = await requireUser(db, request);
    return { user, device: await visibleDevice(db, user, parse(refParams, request.params).uuid) };
  };
  const owner = (d: { id: number; fleet_id: number }) => ({ fleetId: d.fleet_id, deviceId: d.id });

  app.get(base, async (request) => {
    const user = await requireUser(db, request);
    return { items: await listDevices(db, user, parse(listQuery, request.query).fleet) };
  });

  app.get(`${base}/:uuid`, async (request) => toDevice(db, (await deviceOf(request)).device));

  app.patch(`${base}/:uuid`, async (request) => {
    const { user, device } = await deviceOf(request);
    return updateDevice(db, user, device.uuid, parse(updateDeviceRequestSchema, request.body));
  });

  app.delete(`${base}/:uuid`, async (request, reply) => {
    const { user, device } = await deviceOf(request);
    await deleteDevice(db, user, device.uuid);
    return reply.status(204).send();
  });

  app.get(`${base}/:uuid/env`, async (request) => ({
    items: await listEnv(db, owner((await deviceOf(request)).device)),
  }));
  app.get(`${base}/:uuid/config`, async (request) => ({
    items: await listConfig(db, owner((await deviceOf(request)).device)),
  }));
  app.get(`${base}/:uuid/tags`, async (request) => ({
    items: await listTags(db, (await deviceOf(request)).device.id),
  }));
  for (const method of ['post', 'put'] as const) {
    app[method](`${base}/:uuid/env`, async (request) =>
      setEnv(db, owner((await deviceOf(request)).device), parse(setEnvVarRequestSchema, request.body)),
    );
    app[method](`${base}/:uuid/config`, async (request) =>
      setConfig(db, owner((await deviceOf(request)).device), parse(setConfigVarRequestSchema, request.body)),
    );
    app[method](`${base}/:uuid/tags`, async (request) => {
      const { device } = await deviceOf(request);
      const body = parse(setTagRequestSchema, request.body);
      return setTag(db, device.id, body.key, body.value);
    });
  }
  app.delete(`${base}/:uuid/env/:name`, async (request, reply) => {
    const { device } = await deviceOf(request);
    await deleteEnv(
      db,
      owner(device),
      parse(nameParams, request.params).name,
      parse(serviceQuery, request.query).service,
    );
    return reply.status(204).send();
  });
  app.delete(`${base}/:uuid/config/:name`, async (request, reply) => {
    const { device } = await deviceOf(request);
    await deleteConfig(db, owner(device), parse(nameParams, request.params).name);
    return reply.status(204).send();
  });
  app.delete(`${base}/:uuid/tags/:name`, async (request, reply) => {
    const { device } = await deviceOf(request);
    await deleteTag(db, device.id, parse(nameParams, request.params).name);
    return reply.status(204).send();
  });
}
