import type { Db } from '../db/database.js';
import type { GuessLimiter } from './guess-limiter.js';
import { hashKey, sameHash } from './keys.js';
import { userFromToken } from './principal.js';
import { checkPassword } from './users.js';
import { rolesOf } from './principal.js';

/** Who is talking to the registry. */
export type RegistryPrincipal =
  | { kind: 'user'; userId: number; orgIds: number[] }
  | { kind: 'device'; uuid: string; fleetId: number; fleetSlug: string };

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
        .select(['devices.uuid', 'devices.key_hash', 'devices.fleet_id', 'fleets.slug'])
        .where('devices.uuid', '=', uuid)
        .executeTakeFirst();
      return row?.key_hash && sameHash(row.key_hash, hashKey(password)) ? row : undefined;
    });
    return device ? { kind: 'device', uuid: device.uuid, fleetId: device.fleet_id, fleetSlug: device.slug } : null;
  }
  // A token is tried first, but a secret that is neither counts once, as a wrong password of `username`.
  const user = await limiter.password(username, source, async () => {
    const byToken = await userFromToken(db, password);
    if (byToken) return { userId: byToken.userId, orgIds: [...byToken.roles.keys()] };
    const found = await checkPassword(db, username, password).catch(() => undefined);
    return found ? { userId: found.id, orgIds: [...(await rolesOf(db, found.id)).keys()] } : undefined;
  });
  return user ? { kind: 'user', ...user } : null;
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

/** A user may push (and pull) `<fleet slug>/<anything>` when the fleet belongs to one of the user's organizations. */
export async function userMayPush(db: Db, principal: RegistryPrincipal, repository: string): Promise<boolean> {
  if (principal.kind !== 'user' || principal.orgIds.length === 0) return false;
  const slug = fleetSlugOf(repository);
  if (!slug) return false;
  const row = await db
    .selectFrom('fleets')
    .select('id')
    .where('slug', '=', slug)
    .where('organization_id', 'in', principal.orgIds)
    .executeTakeFirst();
  return row !== undefined;
}
