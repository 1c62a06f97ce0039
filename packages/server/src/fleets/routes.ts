import {
  API_PREFIX,
  configJsonRequestSchema,
  createFleetRequestSchema,
  createProvisioningKeyRequestSchema,
  createReleaseRequestSchema,
  setConfigVarRequestSchema,
  setEnvVarRequestSchema,
  slugSchema,
  updateFleetRequestSchema,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requireOrgAdmin, requireUser } from '../auth/principal.js';
import type { UserPrincipal } from '../auth/principal.js';
import { getUser } from '../auth/users.js';
import { parse } from '../http/parse.js';
import { createRelease, listReleases } from '../releases/releases.js';
import {
  deleteConfig,
  deleteEnv,
  listConfig,
  listEnv,
  listFleetTags,
  setConfig,
  setEnv,
} from '../variables/variables.js';
import { makeConfigJson } from './config-json.js';
import { createFleet, deleteFleet, listFleets, toFleet, updateFleet, visibleFleet } from './fleets.js';
import { createProvisioningKey, listProvisioningKeys, revokeProvisioningKey } from './provisioning-keys.js';

const slugParams = z.object({ slug: slugSchema });
const keyParams = z.object({
  slug: slugSchema,
  id: z
    .string()
    .regex(/^\d{1,12}$/)
    .transform(Number),
});
const nameParams = z.object({ slug: slugSchema, name: z.string().min(1).max(255) });
const serviceQuery = z.object({ service: z.string().min(1).max(63).optional() });

export function registerFleetRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const base = `${API_PREFIX}/fleets`;
  const fleetOf = async (request: { headers: { authorization?: string | undefined }; params: unknown }) => {
    const user = await requireUser(db, request as Parameters<typeof requireUser>[1]);
    return { user, fleet: await visibleFleet(db, user, parse(slugParams, request.params).slug) };
  };

  const creatorOf = async (user: UserPrincipal) => ({
    userId: user.userId,
    username: (await getUser(db, user.userId)).username,
  });

  app.get(base, async (request) => ({ items: await listFleets(db, await requireUser(db, request)) }));

  app.post(base, async (request, reply) => {
    const user = await requireUser(db, request);
    return reply.status(201).send(await createFleet(db, user, parse(createFleetRequestSchema, request.body)));
  });

  app.get(`${base}/:slug`, async (request) => toFleet(db, (await fleetOf(request)).fleet));

  app.patch(`${base}/:slug`, async (request) => {
    const { user, fleet } = await fleetOf(request);
    return updateFleet(db, user, fleet.slug, parse(updateFleetRequestSchema, request.body));
  });

  app.delete(`${base}/:slug`, async (request, reply) => {
    const { user, fleet } = await fleetOf(request);
    await deleteFleet(db, user, fleet.slug);
    return reply.status(204).send();
  });

  // ---------------------------------------------------------------------------------------- provisioning keys
  app.get(`${base}/:slug/provisioning-keys`, async (request) => ({
    items: await listProvisioningKeys(db, (await fleetOf(request)).fleet.id),
  }));

  // Only organization admins make provisioning keys: a key works only while its creator administers the
  // organization, so it cannot outlive the membership of whoever made it.
  app.post(`${base}/:slug/provisioning-keys`, async (request, reply) => {
    const { user, fleet } = await fleetOf(request);
    requireOrgAdmin(user, fleet.organization_id);
    const body = parse(createProvisioningKeyRequestSchema, request.body ?? {});
    return reply.status(201).send(await createProvisioningKey(db, fleet.id, await creatorOf(user), body));
  });

  app.delete(`${base}/:slug/provisioning-keys/:id`, async (request) => {
    const { fleet } = await fleetOf(request);
    return revokeProvisioningKey(db, fleet.id, parse(keyParams, request.params).id);
  });

  app.post(`${base}/:slug/config-json`, async (request) => {
    const { user, fleet } = await fleetOf(request);
    requireOrgAdmin(user, fleet.organization_id);
    const body = parse(configJsonRequestSchema, request.body ?? {});
    return makeConfigJson(db, fleet, await creatorOf(user), ctx.publicUrl, body);
  });

  // ------------------------------------------------------------------------------------------------- releases
  app.get(`${base}/:slug/releases`, async (request) => ({
    items: await listReleases(db, (await fleetOf(request)).fleet.id),
  }));

  app.post(`${base}/:slug/releases`, async (request, reply) => {
    const { fleet } = await fleetOf(request);
    return reply.status(201).send(await createRelease(db, fleet.id, parse(createReleaseRequestSchema, request.body)));
  });

  // ------------------------------------------------------------------------------------------------ variables
  app.get(`${base}/:slug/env`, async (request) => ({
    items: await listEnv(db, { fleetId: (await fleetOf(request)).fleet.id, deviceId: null }),
  }));
  for (const method of ['post', 'put'] as const) {
    app[method](`${base}/:slug/env`, async (request) => {
      const { fleet } = await fleetOf(request);
      return setEnv(db, { fleetId: fleet.id, deviceId: null }, parse(setEnvVarRequestSchema, request.body));
    });
    app[method](`${base}/:slug/config`, async (request) => {
      const { fleet } = await fleetOf(request);
      return setConfig(db, { fleetId: fleet.id, deviceId: null }, parse(setConfigVarRequestSchema, request.body));
    });
  }
  app.delete(`${base}/:slug/env/:name`, async (request, reply) => {
    const { fleet } = await fleetOf(request);
    await deleteEnv(
      db,
      { fleetId: fleet.id, deviceId: null },
      parse(nameParams, request.params).name,
      parse(serviceQuery, request.query).service,
    );
    return reply.status(204).send();
  });
  app.get(`${base}/:slug/config`, async (request) => ({
    items: await listConfig(db, { fleetId: (await fleetOf(request)).fleet.id, deviceId: null }),
  }));
  app.delete(`${base}/:slug/config/:name`, async (request, reply) => {
    const { fleet } = await fleetOf(request);
    await deleteConfig(db, { fleetId: fleet.id, deviceId: null }, parse(nameParams, request.params).name);
    return reply.status(204).send();
  });
  app.get(`${base}/:slug/tags`, async (request) => ({
    items: await listFleetTags(db, (await fleetOf(request)).fleet.id),
  }));
}
