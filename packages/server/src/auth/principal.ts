import { FlotillaError } from '@flotilla/protocol';
import type { Role } from '@flotilla/protocol';
import type { FastifyRequest } from 'fastify';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bearerToken, hashKey } from './keys.js';

export interface UserPrincipal {
  kind: 'user';
  userId: number;
  /** Organization id → the user's role there. */
  roles: Map<number, Role>;
  authMethod: 'session' | 'api-key';
  /** Id of the api_keys or sessions row authenticated with (by authMethod), so revocation can be re-checked. */
  credentialId: number;
}

/** The user behind an API key or session token, or undefined. */
export async function userFromToken(db: Db, token: string): Promise<UserPrincipal | undefined> {
  const tokenHash = hashKey(token);
  const at = now();
  let userId: number | undefined;
  let credentialId = 0;
  let authMethod: UserPrincipal['authMethod'] = 'api-key';
  const key = await db
    .selectFrom('api_keys')
    .select(['id', 'user_id', 'expires_at', 'last_used_at'])
    .where('key_hash', '=', tokenHash)
    .executeTakeFirst();
  if (key && (key.expires_at === null || key.expires_at > at)) {
    userId = key.user_id;
    credentialId = key.id;
    // Written at most once a minute so a busy CLI does not turn every read into a write.
    if (!key.last_used_at || Date.parse(key.last_used_at) < Date.now() - 60_000) {
      await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', key.id).execute();
    }
  } else {
    const session = await db
      .selectFrom('sessions')
      .select(['id', 'user_id', 'expires_at'])
      .where('token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (session && session.expires_at > at) {
      userId = session.user_id;
      credentialId = session.id;
      authMethod = 'session';
    }
  }
  if (userId === undefined) return undefined;
  return { kind: 'user', userId, roles: await rolesOf(db, userId), authMethod, credentialId };
}

export async function rolesOf(db: Db, userId: number): Promise<Map<number, Role>> {
  const rows = await db
    .selectFrom('memberships')
    .select(['organization_id', 'role'])
    .where('user_id', '=', userId)
    .execute();
  return new Map(rows.map((r) => [r.organization_id, r.role]));
}

/** The authenticated user of a user-API request; 401 otherwise. */
export async function requireUser(db: Db, request: FastifyRequest): Promise<UserPrincipal> {
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
