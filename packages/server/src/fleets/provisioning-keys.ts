import { FlotillaError, generateKey } from '@flotilla/protocol';
import type { z } from 'zod';
import type { provisioningKeySchema } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { hashKey } from '../auth/keys.js';
import { futureIsoOrThrow } from '../auth/users.js';

type ProvisioningKey = z.infer<typeof provisioningKeySchema>;

function toKey(r: {
  id: number;
  name: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  created_by: number | null;
  creator: string | null;
}): ProvisioningKey {
  return {
    id: r.id,
    name: r.name,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    revokedAt: r.revoked_at,
    createdBy: r.created_by === null || r.creator === null ? null : { id: r.created_by, username: r.creator },
  };
}

/**
 * A new provisioning key of the fleet, made by `creator`. The caller must have checked that `creator` administers
 * the fleet's organization; the key works only as long as that stays true (see fleetOfProvisioningKey).
 */
export async function createProvisioningKey(
  db: Db,
  fleetId: number,
  creator: { userId: number; username: string },
  input: { name?: string | undefined; expiresAt?: string | undefined },
): Promise<ProvisioningKey & { key: string }> {
  const key = generateKey();
  const expiresAt = input.expiresAt === undefined ? null : futureIsoOrThrow(input.expiresAt);
  const created_at = now();
  const row = await db
    .insertInto('provisioning_keys')
    .values({
      fleet_id: fleetId,
      name: input.name ?? null,
      key_hash: hashKey(key),
      created_at,
      expires_at: expiresAt,
      revoked_at: null,
      created_by: creator.userId,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return {
    id: row.id,
    name: input.name ?? null,
    createdAt: created_at,
    expiresAt,
    revokedAt: null,
    createdBy: { id: creator.userId, username: creator.username },
    key,
  };
}

function keysOf(db: Db, fleetId: number) {
  return db
    .selectFrom('provisioning_keys')
    .leftJoin('users', 'users.id', 'provisioning_keys.created_by')
    .select([
      'provisioning_keys.id',
      'provisioning_keys.name',
      'provisioning_keys.created_at',
      'provisioning_keys.expires_at',
      'provisioning_keys.revoked_at',
      'provisioning_keys.created_by',
      'users.username as creator',
    ])
    .where('provisioning_keys.fleet_id', '=', fleetId);
}

export async function listProvisioningKeys(db: Db, fleetId: number): Promise<ProvisioningKey[]> {
  return (await keysOf(db, fleetId).orderBy('provisioning_keys.id').execute()).map(toKey);
}

export async function revokeProvisioningKey(db: Db, fleetId: number, id: number): Promise<ProvisioningKey> {
  const row = await keysOf(db, fleetId).where('provisioning_keys.id', '=', id).executeTakeFirst();
  if (!row) throw new FlotillaError('API_KEY_NOT_FOUND', `no provisioning key ${id} in this fleet`);
  const revoked_at = row.revoked_at ?? now();
  await db.updateTable('provisioning_keys').set({ revoked_at }).where('id', '=', id).execute();
  return toKey({ ...row, revoked_at });
}

/**
 * The fleet a valid provisioning key belongs to, `{expired}` for a dead one, or undefined for an unknown one.
 *
 * INVARIANT: a key is valid only while unexpired, unrevoked, and its creator is an admin of the fleet's
 * organization, checked here at every use, so removing or demoting the creator disables their keys at once. Keys
 * made before creators were recorded (created_by null) are not tied to anyone.
 */
export async function fleetOfProvisioningKey(
  db: Db,
  key: string,
): Promise<{ fleetId: number } | { expired: true } | undefined> {
  const row = await db
    .selectFrom('provisioning_keys')
    .innerJoin('fleets', 'fleets.id', 'provisioning_keys.fleet_id')
    .leftJoin('memberships', (join) =>
      join
        .onRef('memberships.organization_id', '=', 'fleets.organization_id')
        .onRef('memberships.user_id', '=', 'provisioning_keys.created_by'),
    )
    .select([
      'provisioning_keys.fleet_id',
      'provisioning_keys.expires_at',
      'provisioning_keys.revoked_at',
      'provisioning_keys.created_by',
      'memberships.role as creatorRole',
    ])
    .where('provisioning_keys.key_hash', '=', hashKey(key))
    .executeTakeFirst();
  if (!row) return undefined;
  const at = now();
  if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= at)) return { expired: true };
  if (row.created_by !== null && row.creatorRole !== 'admin') return { expired: true };
  return { fleetId: row.fleet_id };
}
