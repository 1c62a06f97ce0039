import { FlotillaError } from '@flotilla/protocol';
import { REMOTE_ACCESS_ROLES, WRITER_ROLES, type Role } from '@flotilla/protocol';
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { isWebSocketUpgrade, requireCsrf, requireOwnOrigin, sessionCookieOf } from './browser-session.js';
import { bearerToken, hashKey } from './keys.js';

export interface UserPrincipal {
  kind: 'user';
  userId: number;
  /** Organization id → the user's role there. */
  roles: Map<number, Role>;
  authMethod: 'session' | 'api-key';
  /** The API key or session the request presented, so what it opened can be closed when it is revoked. */
  credential: UserCredential;
  /** Server administrators may create users. */
  serverAdmin: boolean;
}

export interface UserCredential {
  kind: 'session' | 'api-key';
  id: number;
}

/** The user behind an API key or session token, or undefined. */
export async function userFromToken(db: Db, token: string): Promise<UserPrincipal | undefined> {
  const tokenHash = hashKey(token);
  const at = now();
  const key = await db
    .selectFrom('api_keys')
    .select(['id', 'expires_at', 'last_used_at'])
    .where('key_hash', '=', tokenHash)
    .executeTakeFirst();
  if (key && (key.expires_at === null || key.expires_at > at)) {
    // Written at most once a minute so a busy CLI does not turn every read into a write.
    if (!key.last_used_at || Date.parse(key.last_used_at) < Date.now() - 60_000) {
      await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', key.id).execute();
    }
    return userFromCredential(db, { kind: 'api-key', id: key.id });
  }
  return userFromSessionToken(db, token);
}

/** The user behind a session token (never an API key: the dashboard's cookie holds only sessions), or undefined. */
export async function userFromSessionToken(db: Db, token: string): Promise<UserPrincipal | undefined> {
  const session = await db
    .selectFrom('sessions')
    .select('id')
    .where('token_hash', '=', hashKey(token))
    .executeTakeFirst();
  return session ? userFromCredential(db, { kind: 'session', id: session.id }) : undefined;
}

/**
 * The user a credential (by id) stands for while it is still valid: not deleted, not expired. Long-lived streams
 * call this again to learn whether they may stay open.
 */
export async function userFromCredential(db: Db, credential: UserCredential): Promise<UserPrincipal | undefined> {
  const at = now();
  const row =
    credential.kind === 'api-key'
      ? await db
          .selectFrom('api_keys')
          .innerJoin('users', 'users.id', 'api_keys.user_id')
          .select(['users.id', 'users.is_server_admin'])
          .where('api_keys.id', '=', credential.id)
          .where((eb) => eb.or([eb('api_keys.expires_at', 'is', null), eb('api_keys.expires_at', '>', at)]))
          .executeTakeFirst()
      : await db
          .selectFrom('sessions')
          .innerJoin('users', 'users.id', 'sessions.user_id')
          .select(['users.id', 'users.is_server_admin'])
          .where('sessions.id', '=', credential.id)
          .where('sessions.expires_at', '>', at)
          .executeTakeFirst();
  if (!row) return undefined;
  return {
    kind: 'user',
    userId: row.id,
    roles: await rolesOf(db, row.id),
    authMethod: credential.kind,
    credential,
    serverAdmin: row.is_server_admin === 1,
  };
}

export async function rolesOf(db: Db, userId: number): Promise<Map<number, Role>> {
  const rows = await db
    .selectFrom('memberships')
    .select(['organization_id', 'role'])
    .where('user_id', '=', userId)
    .execute();
  return new Map(rows.map((r) => [r.organization_id, r.role]));
}

/**
 * The authenticated user of a user-API request; 401 otherwise. A wrong key or cookie is counted against the
 * caller's address by the app's GuessLimiter (auth/guess-limiter.ts), which sees every 401 answered to a request
 * presenting one.
 *
 * An Authorization header decides alone. Without one, the dashboard's session cookie is taken (browser-session.ts),
 * and then INVARIANT: a request other than GET/HEAD must carry the session's CSRF token, and a WebSocket upgrade
 * must come from the server's own origin (`ownOrigins`: origins besides the one the request reached, e.g. the
 * public URL's); else 403, whatever the route.
 */
export async function requireUser(
  db: Db,
  request: FastifyRequest,
  ownOrigins: readonly string[] = [],
): Promise<UserPrincipal> {
  if (request.headers.authorization === undefined) {
    const cookie = sessionCookieOf(request);
    if (cookie === undefined)
      throw new FlotillaError(
        'UNAUTHENTICATED',
        'missing Authorization: Bearer <api key or session token> (or the dashboard session cookie)',
      );
    const user = await userFromSessionToken(db, cookie);
    if (!user) throw new FlotillaError('UNAUTHENTICATED', 'the session cookie is invalid or expired; sign in again');
    if (isWebSocketUpgrade(request)) requireOwnOrigin(request, ownOrigins);
    else requireCsrf(request, cookie);
    return user;
  }
  const token = bearerToken(request.headers.authorization);
  if (!token) throw new FlotillaError('UNAUTHENTICATED', 'missing Authorization: Bearer <api key or session token>');
  const user = await userFromToken(db, token);
  if (!user) throw new FlotillaError('UNAUTHENTICATED', 'invalid or expired credentials');
  return user;
}

export function orgIds(user: UserPrincipal): number[] {
  return [...user.roles.keys()];
}

export function requireOrgAdmin(user: UserPrincipal, organizationId: number): void {
  if (user.roles.get(organizationId) !== 'admin')
    throw new FlotillaError('FORBIDDEN', 'only organization admins may do this');
}

/**
 * The user as a write route sees them: only the organizations where their role may change things. An observer's
 * organizations drop out, so a write there finds nothing to change (and says why: see serve.ts).
 */
export function asWriter(user: UserPrincipal): UserPrincipal {
  if ([...user.roles.values()].every((role) => WRITER_ROLES.includes(role))) return user;
  return { ...user, roles: new Map([...user.roles].filter(([, role]) => WRITER_ROLES.includes(role))) };
}

/** FORBIDDEN unless the user's role in the organization allows shells, tunnels and public URLs. */
export function requireRemoteAccess(user: UserPrincipal, organizationId: number): void {
  const role = user.roles.get(organizationId);
  if (role === undefined || !REMOTE_ACCESS_ROLES.includes(role))
    throw new FlotillaError('FORBIDDEN', `your role (${role ?? 'none'}) does not allow remote access to this device`);
}
