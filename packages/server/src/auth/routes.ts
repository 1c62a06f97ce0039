import { API_PREFIX, createApiKeyRequestSchema, createUserRequestSchema, loginRequestSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { parse } from '../http/parse.js';
import { listOrganizations } from '../organizations/organizations.js';
import { requireUser } from './principal.js';
import { createApiKey, createUser, deleteApiKey, getUser, listApiKeys, login } from './users.js';
import { FlotillaError } from '@flotilla/protocol';

const idParams = z.object({ id: z.string().regex(/^\d{1,12}$/).transform(Number) });

export function registerAuthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  app.post(`${API_PREFIX}/auth/login`, async (request) => {
    const body = parse(loginRequestSchema, request.body);
    return login(db, body.username, body.password);
  });

  app.get(`${API_PREFIX}/whoami`, async (request) => {
    const user = await requireUser(db, request);
    return { user: await getUser(db, user.userId), organizations: await listOrganizations(db, user), authMethod: user.authMethod };
  });

  app.get(`${API_PREFIX}/api-keys`, async (request) => ({ items: await listApiKeys(db, await requireUser(db, request)) }));

  app.post(`${API_PREFIX}/api-keys`, async (request, reply) => {
    const user = await requireUser(db, request);
    const body = parse(createApiKeyRequestSchema, request.body);
    return reply.status(201).send(await createApiKey(db, user.userId, body));
  });

  app.delete(`${API_PREFIX}/api-keys/:id`, async (request, reply) => {
    const user = await requireUser(db, request);
    await deleteApiKey(db, user, parse(idParams, request.params).id);
    return reply.status(204).send();
  });

  // Creating users is for organization admins (there is no self sign-up on a self-hosted control plane).
  app.post(`${API_PREFIX}/users`, async (request, reply) => {
    const user = await requireUser(db, request);
    if (![...user.roles.values()].includes('admin')) throw new FlotillaError('FORBIDDEN', 'only organization admins may create users');
    const body = parse(createUserRequestSchema, request.body);
    return reply.status(201).send(await createUser(db, body));
  });
}
