import { FlotillaError, generateKey } from '@flotilla/protocol';
import type { ApiKey, User } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { toUser } from '../organizations/organizations.js';
import { hashKey } from './keys.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { UserPrincipal } from './principal.js';

export const SESSION_TTL_MS = 7 * 24 * 3600 * 1000;

export async function createUser(
  db: Db,
  input: { username: string; email?: string | undefined; password: string; serverAdmin?: boolean | undefined },
): Promise<User> {
  const taken = await db.selectFrom('users').select('id').where('username', '=', input.username).executeTakeFirst();
  if (taken) throw new FlotillaError('SLUG_TAKEN', `username "${input.username}" is taken`);
  const created_at = now();
  const row = await db
    .insertInto('users')
    .values({
      username: input.username,
      email: input.email ?? null,
      password_hash: await hashPassword(input.password),
      created_at,
      is_server_admin: input.serverAdmin ? 1 : 0,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, username: input.username, email: input.email ?? null, createdAt: created_at };
}

/** Checks a password; the same error for an unknown user and a wrong password, so usernames cannot be probed. */
export async function checkPassword(db: Db, username: string, password: string): Promise<User> {
  const row = await db.selectFrom('users').selectAll().where('username', '=', username).executeTakeFirst();
  if (!row || !(await verifyPassword(row.password_hash, password)))
    throw new FlotillaError('INVALID_CREDENTIALS', 'wrong username or password');
  return toUser(row);
}

export async function login(
  db: Db,
  username: string,
  password: string,
): Promise<{ token: string; expiresAt: string; user: User }> {
  const user = await checkPassword(db, username, password);
  const token = generateKey();
  const expiresAt = new Date(Date.now() + SESSION_TTL_MS).toISOString();
  await db
    .insertInto('sessions')
    .values({ user_id: user.id, token_hash: hashKey(token), created_at: now(), expires_at: expiresAt })
    .execute();
  return { token, expiresAt, user };
}

/** Ends a session (logout); its open streams are the caller's to end (UserStreams.credentialRevoked). */
export async function deleteSession(db: Db, sessionId: number): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', sessionId).execute();
}

export async function getUser(db: Db, userId: number): Promise<User> {
  const row = await db.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
  if (!row) throw new FlotillaError('USER_NOT_FOUND', 'no such user');
  return toUser(row);
}

function toApiKey(r: {
  id: number;
  name: string;
  description: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}): ApiKey {
  return {
    id: r.id,
    name: r.name,
    description: r.description,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    lastUsedAt: r.last_used_at,
  };
}

export async function createApiKey(
  db: Db,
  userId: number,
  input: { name: string; description?: string | undefined; expiresAt?: string | undefined },
): Promise<ApiKey & { key: string }> {
  const expiresAt = input.expiresAt === undefined ? null : futureIsoOrThrow(input.expiresAt);
  const key = generateKey();
  const created_at = now();
  const row = await db
    .insertInto('api_keys')
    .values({
      user_id: userId,
      name: input.name,
      description: input.description ?? null,
      key_hash: hashKey(key),
      created_at,
      expires_at: expiresAt,
      last_used_at: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return {
    id: row.id,
    name: input.name,
    description: input.description ?? null,
    createdAt: created_at,
    expiresAt,
    lastUsedAt: null,
    key,
  };
}

export async function listApiKeys(db: Db, user: UserPrincipal): Promise<ApiKey[]> {
  const rows = await db.selectFrom('api_keys').selectAll().where('user_id', '=', user.userId).orderBy('id').execute();
  return rows.map(toApiKey);
}

export async function deleteApiKey(db: Db, user: UserPrincipal, id: number): Promise<void> {
  const result = await db
    .deleteFrom('api_keys')
    .where('id', '=', id)
    .where('user_id', '=', user.userId)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw new FlotillaError('API_KEY_NOT_FOUND', `no API key ${id}`);
}

export function isoOrThrow(value: string): string {
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) throw new FlotillaError('VALIDATION_FAILED', `"${value}" is not an ISO-8601 date`);
  return new Date(ms).toISOString();
}

/** An expiry: an ISO-8601 date in the future (a key born expired is a mistake, never what was meant). */
export function futureIsoOrThrow(value: string): string {
  const iso = isoOrThrow(value);
  if (Date.parse(iso) <= Date.now())
    throw new FlotillaError('VALIDATION_FAILED', `expiry ${iso} is in the past; give a future date`);
  return iso;
}
