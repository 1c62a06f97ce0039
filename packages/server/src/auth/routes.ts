import { API_PREFIX, createApiKeyRequestSchema, createUserRequestSchema, loginRequestSchema } from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
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

/**
 * Password logins per account per minute (successful ones included). Passwords are the only guessable secret a
 * client sends (API, device and provisioning keys are 32 random bytes), so this is where guessing is slowed down.
 * Counted per username, not per address: many users may share a proxy's address, and an attacker can change his.
 * Counts are per server node.
 */
export const LOGIN_ATTEMPTS_PER_MINUTE = 10;

/** The rate-limit key of a login: its username (body already parsed: the limit runs at preHandler), else the address. */
function loginKey(request: FastifyRequest): string {
  const username = (request.body as { username?: unknown } | undefined)?.username;
  return typeof username === 'string' && username.length > 0 && username.length <= 200
    ? `user:${username.toLowerCase()}`
    : `ip:${request.ip}`;
}

export function registerAuthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  const loginLimit = {
    max: LOGIN_ATTEMPTS_PER_MINUTE,
    timeWindow: 60_000,
    hook: 'preHandler' as const,
    keyGenerator: loginKey,
  };
  app.post(`${API_PREFIX}/auth/login`, { config: { rateLimit: loginLimit } }, async (request) => {
    const body = parse(loginRequestSchema, request.body);
    return login(db, body.username, body.password);
  });

  app.get(`${API_PREFIX}/whoami`, async (request) => {
    const user = await requireUser(db, request);
    return {
      user: await getUser(db, user.userId),
      organizations: await listOrganizations(db, user),
      authMethod: user.authMethod,
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
    await deleteApiKey(db, user, parse(idParams, request.params).id);
    return reply.status(204).send();
  });

  // Creating users is for organization admins (there is no self sign-up on a self-hosted control plane).
  app.post(`${API_PREFIX}/users`, async (request, reply) => {
    const user = await requireUser(db, request);
    if (![...user.roles.values()].includes('admin'))
      throw new FlotillaError('FORBIDDEN', 'only organization admins may create users');
    const body = parse(createUserRequestSchema, request.body);
    return reply.status(201).send(await createUser(db, body));
  });
}
