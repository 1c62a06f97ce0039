import { createHash } from 'node:crypto';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { GuessLimiter } from './guess-limiter.js';
import { hashKey, sameHash } from './keys.js';
import { type Role, WRITER_ROLES } from '@flotilla/protocol';
import { rolesOf, userFromToken } from './principal.js';
import { checkPassword } from './users.js';

/** A user principal from their roles as read now (the caller reads them afresh on every registry request). */
function userPrincipal(userId: number, roles: ReadonlyMap<number, Role>, credential: string): RegistryPrincipal {
  const writerOrgIds = [...roles].filter(([, role]) => WRITER_ROLES.includes(role)).map(([id]) => id);
  return { kind: 'user', userId, orgIds: [...roles.keys()], writerOrgIds, credential };
}

/**
 * Who is talking to the registry, and with which credential (see `credentialOf`): `k:<api key id>`,
 * `s:<session id>`, `p:<user id>:<fingerprint of the password hash>` or `d:<device id>:<fingerprint of the key hash>`.
 */
export type RegistryPrincipal =
  | {
      kind: 'user';
      userId: number;
      /** Organizations the user belongs to (pull). */
      orgIds: number[];
      /** Organizations where the user's role may change things (push): an observer's are not among them. */
      writerOrgIds: number[];
      credential: string;
    }
  | { kind: 'device'; uuid: string; fleetId: number; fleetSlug: string; credential: string };

/**
 * A short hash of a stored secret hash, so a token names the exact key or password it came from (a changed key or
 * password ends it) without carrying anything that helps to guess either.
 */
function fingerprint(storedHash: string): string {
  return createHash('sha256').update(`flotilla-registry-credential\0${storedHash}`).digest('hex').slice(0, 16);
}

/**
 * Basic-auth credentials of a registry client: `d_<uuid>` + device key → that device; any username + API key or
 * session token → its user; username + password → that user. Null when none of these hold. Wrong ones are counted
 * by `guard.limiter` for the client's address `guard.source` (a device key as a key, anything else as a password of
 * `username`), which throws RATE_LIMITED once they are too many.
 */
export async function authenticateCredentials(
  db: Db,
  username: string,
  password: string,
  guard: { limiter: GuessLimiter; source: string },
): Promise<RegistryPrincipal | null> {
  if (password.length === 0 || password.length > 1000 || username.length > 200) return null;
  const { limiter, source } = guard;
  const deviceMatch = /^d_([0-9a-f]{32}|[0-9a-f]{62})$/.exec(username);
  if (deviceMatch?.[1]) {
    const uuid = deviceMatch[1];
    const device = await limiter.key(source, async () => {
      const row = await db
        .selectFrom('devices')
        .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
        .select(['devices.id', 'devices.uuid', 'devices.key_hash', 'devices.fleet_id', 'fleets.slug'])
        .where('devices.uuid', '=', uuid)
        .executeTakeFirst();
      return row?.key_hash && sameHash(row.key_hash, hashKey(password))
        ? { ...row, key_hash: row.key_hash }
        : undefined;
    });
    return device ? deviceRegistryPrincipal(device) : null;
  }
  // A token is tried first, but a secret that is neither counts once, as a wrong password of `username`.
  const user = await limiter.password(username, source, async () => {
    const byToken = await userFromToken(db, password);
    if (byToken) {
      const credential = `${byToken.credential.kind === 'session' ? 's' : 'k'}:${byToken.credential.id}`;
      return userPrincipal(byToken.userId, byToken.roles, credential);
    }
    const found = await checkPassword(db, username, password).catch(() => undefined);
    return found ? ((await passwordRegistryPrincipal(db, found.id)) ?? undefined) : undefined;
  });
  return user ?? null;
}

interface DeviceRow {
  id: number;
  uuid: string;
  key_hash: string;
  fleet_id: number;
  slug: string;
}

function deviceRegistryPrincipal(row: DeviceRow): RegistryPrincipal {
  const credential = `d:${row.id}:${fingerprint(row.key_hash)}`;
  return { kind: 'device', uuid: row.uuid, fleetId: row.fleet_id, fleetSlug: row.slug, credential };
}

async function passwordRegistryPrincipal(db: Db, userId: number): Promise<RegistryPrincipal | null> {
  const row = await db.selectFrom('users').select('password_hash').where('id', '=', userId).executeTakeFirst();
  if (!row?.password_hash) return null;
  const credential = `p:${userId}:${fingerprint(row.password_hash)}`;
  return userPrincipal(userId, await rolesOf(db, userId), credential);
}

/**
 * The principal behind a credential a registry token carries, read again from the database: null once the API key
 * or session is gone or expired, the password or device key changed, or the device was deleted. One lookup by
 * primary key (plus the user's memberships), cheap enough for every registry request.
 */
export async function principalFromCredential(db: Db, credential: string): Promise<RegistryPrincipal | null> {
  const m = /^([ksdp]):(\d{1,15})(?::([0-9a-f]{16}))?$/.exec(credential);
  if (!m?.[1] || !m[2]) return null;
  const id = Number(m[2]);
  const at = now();
  switch (m[1]) {
    case 'k':
    case 's': {
      const row =
        m[1] === 'k'
          ? await db.selectFrom('api_keys').select(['user_id', 'expires_at']).where('id', '=', id).executeTakeFirst()
          : await db.selectFrom('sessions').select(['user_id', 'expires_at']).where('id', '=', id).executeTakeFirst();
      if (!row || (row.expires_at !== null && row.expires_at <= at)) return null;
      return userPrincipal(row.user_id, await rolesOf(db, row.user_id), credential);
    }
    case 'p': {
      const principal = await passwordRegistryPrincipal(db, id);
      return principal?.credential === credential ? principal : null;
    }
    default: {
      const row = await db
        .selectFrom('devices')
        .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
        .select(['devices.id', 'devices.uuid', 'devices.key_hash', 'devices.fleet_id', 'fleets.slug'])
        .where('devices.id', '=', id)
        .executeTakeFirst();
      if (!row?.key_hash) return null;
      const principal = deviceRegistryPrincipal({ ...row, key_hash: row.key_hash });
      return principal.credential === credential ? principal : null;
    }
  }
}

function fleetSlugOf(repository: string): string | undefined {
  const slash = repository.indexOf('/');
  if (slash <= 0 || slash === repository.length - 1) return undefined;
  return repository.slice(0, slash);
}

/** A device may pull `<slug of its fleet>/<anything>` only. */
export async function deviceMayPull(db: Db, deviceUuid: string, repository: string): Promise<boolean> {
  const slug = fleetSlugOf(repository);
  if (!slug) return false;
  const row = await db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .select('fleets.slug')
    .where('devices.uuid', '=', deviceUuid)
    .executeTakeFirst();
  return row?.slug === slug;
}

/** A user may push `<fleet slug>/<anything>` when the fleet belongs to an organization where they are no observer. */
export async function userMayPush(db: Db, principal: RegistryPrincipal, repository: string): Promise<boolean> {
  return principal.kind === 'user' && userHasFleet(db, principal.writerOrgIds, repository);
}

/** Whether the user may pull `repository`: a fleet of an organization they belong to, in whatever role. */
export async function userMayPull(db: Db, principal: RegistryPrincipal, repository: string): Promise<boolean> {
  return principal.kind === 'user' && userHasFleet(db, principal.orgIds, repository);
}

async function userHasFleet(db: Db, orgIds: number[], repository: string): Promise<boolean> {
  if (orgIds.length === 0) return false;
  const slug = fleetSlugOf(repository);
  if (!slug) return false;
  const row = await db
    .selectFrom('fleets')
    .select('id')
    .where('slug', '=', slug)
    .where('organization_id', 'in', orgIds)
    .executeTakeFirst();
  return row !== undefined;
}
