import { FlotillaError, USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.js';
import { serve } from '../http/serve.js';
import { listOrganizations } from '../organizations/organizations.js';
import { clearSessionCookie, csrfTokenFor, isSecure, sessionCookieOf, setSessionCookie } from './browser-session.js';
import { createApiKey, createUser, deleteApiKey, deleteSession, getUser, listApiKeys, login } from './users.js';

export function registerAuthRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  /** The one password sign-in of the CLI and the dashboard: checked through the guess limiter, a session made. */
  const passwordLogin = async (body: { username: string; password: string }, request: FastifyRequest) => {
    const session = await app.guessLimiter.password(body.username, request.ip, () =>
      login(db, body.username, body.password),
    );
    if (!session) throw new FlotillaError('INVALID_CREDENTIALS', 'wrong username or password');
    return session;
  };

  serve(app, db, R.login, async ({ body, request }) => passwordLogin(body, request));

  serve(app, db, R.browserLogin, async ({ body, request, reply }) => {
    const session = await passwordLogin(body, request);
    const maxAgeSeconds = (Date.parse(session.expiresAt) - Date.now()) / 1000;
    setSessionCookie(reply, session.token, maxAgeSeconds, isSecure(request, ctx.publicUrl));
    return { user: session.user, csrfToken: csrfTokenFor(session.token), expiresAt: session.expiresAt };
  });

  serve(app, db, R.csrfToken, async ({ request }) => {
    const cookie = sessionCookieOf(request);
    // requireUser took the cookie only when no Authorization header came.
    if (request.headers.authorization !== undefined || cookie === undefined)
      throw new FlotillaError('VALIDATION_FAILED', 'only a session signed in by the dashboard cookie has a CSRF token');
    return { csrfToken: csrfTokenFor(cookie) };
  });

  serve(app, db, R.logout, async ({ user, request, reply }) => {
    if (user.credential.kind === 'api-key')
      throw new FlotillaError(
        'VALIDATION_FAILED',
        'an API key is not a session: delete the key instead (DELETE /api/v1/api-keys/:id)',
      );
    await deleteSession(db, user.credential.id);
    app.userStreams.credentialRevoked(user.credential);
    clearSessionCookie(reply, isSecure(request, ctx.publicUrl));
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
