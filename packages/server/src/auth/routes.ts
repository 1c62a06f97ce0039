import { FlotillaError, USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { serve } from '../http/serve.js';
import { listOrganizations } from '../organizations/organizations.js';
import { createApiKey, createUser, deleteApiKey, getUser, listApiKeys, login } from './users.js';

export function registerAuthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  serve(app, db, R.login, async ({ body, request }) => {
    const session = await app.guessLimiter.password(body.username, request.ip, () =>
      login(db, body.username, body.password),
    );
    if (!session) throw new FlotillaError('INVALID_CREDENTIALS', 'wrong username or password');
    return session;
  });

  serve(app, db, R.whoami, async ({ user }) => ({
    user: await getUser(db, user.userId),
    organizations: await listOrganizations(db, user),
    authMethod: user.authMethod,
    serverAdmin: user.serverAdmin,
  }));

  serve(app, db, R.listApiKeys, async ({ user }) => ({ items: await listApiKeys(db, user) }));

  serve(app, db, R.createApiKey, async ({ user, body }) => createApiKey(db, user.userId, body));

  serve(app, db, R.deleteApiKey, async ({ user, params }) => {
    await deleteApiKey(db, user, params.id);
    app.userStreams.credentialRevoked({ kind: 'api-key', id: params.id });
  });

  // Creating users is for server administrators only (there is no self sign-up on a self-hosted control plane):
  // an organization admin is whoever created an organization, which any user may do.
  serve(app, db, R.createUser, async ({ user, body }) => {
    if (!user.serverAdmin) throw new FlotillaError('FORBIDDEN', 'only server administrators may create users');
    return createUser(db, body);
  });
}
