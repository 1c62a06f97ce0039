import { API_PREFIX, createApiKeyRequestSchema, createUserRequestSchema, loginRequestSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { parse } from '../http/parse.js';
import { listOrganizations } from '../organizations/organizations.js';
import { requireUser } from './principal.js';
import { createApiKey, createUser, deleteApiKey, getUser, listApiKeys, login } from './users.js';
import { FlotillaError } from '@flotilla/protocol';

const idParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,12}$/)
    .transform(Number),
});

export function registerAuthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  app.post(`${API_PREFIX}/auth/login`, async (request) => {
    const body = parse(loginRequestSchema, request.body);
    return app.guessLimiter.password(body.username, request.ip, () => login(db, body.username, body.password));
  });

  app.get(`${API_PREFIX}/whoami`, async (request) => {
    const user = await requireUser(db, request);
    return {
      user: await getUser(db, user.userId),
      organizations: await listOrganizations(db, user),
      authMethod: user.authMethod,
      serverAdmin: user.serverAdmin,
    };
  });

  app.get(`${API_PREFIX}/api-keys`, async (request) => ({
    items: await listApiKeys(db, await requireUser(db, request)),
  }));

  app.post(`${API_PREFIX}/api-keys`, async (request, reply) => {
    const user = await requireUser(db, request);
    const body = parse(createApiKeyRequestSchema, request.body);
    return reply.status(201).send(await createApiKey(db, user.userId, body));
  });

  app.delete(`${API_PREFIX}/api-keys/:id`, async (request, reply) => {
    const user = await requireUser(db, request);
    const { id } = parse(idParams, request.params);
    await deleteApiKey(db, user, id);
    app.userStreams.credentialRevoked({ kind: 'api-key', id });
    return reply.status(204).send();
  });

  // Creating users is for server administrators only (there is no self sign-up on a self-hosted control plane):
  // an organization admin is whoever created an organization, which any user may do.
  app.post(`${API_PREFIX}/users`, async (request, reply) => {
    const user = await requireUser(db, request);
    if (!user.serverAdmin) throw new FlotillaError('FORBIDDEN', 'only server administrators may create users');
    const body = parse(createUserRequestSchema, request.body);
    return reply.status(201).send(await createUser(db, body));
  });
}
