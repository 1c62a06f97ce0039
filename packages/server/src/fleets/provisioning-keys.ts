import { FlotillaError, generateKey } from '@flotilla/protocol';
import type { z } from 'zod';
import type { provisioningKeySchema } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { hashKey } from '../auth/keys.js';
import { isoOrThrow } from '../auth/users.js';

type ProvisioningKey = z.infer<typeof provisioningKeySchema>;

function toKey(r: {
  id: number;
  name: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}): ProvisioningKey {
  return { id: r.id, name: r.name, createdAt: r.created_at, expiresAt: r.expires_at, revokedAt: r.revoked_at };
}

export async function createProvisioningKey(
  db: Db,
  fleetId: number,
  input: { name?: string | undefined; expiresAt?: string | undefined },
): Promise<ProvisioningKey & { key: string }> {
  const key = generateKey();
  const expiresAt = input.expiresAt === undefined ? null : isoOrThrow(input.expiresAt);
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
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, name: input.name ?? null, createdAt: created_at, expiresAt, revokedAt: null, key };
}

export async function listProvisioningKeys(db: Db, fleetId: number): Promise<ProvisioningKey[]> {
  const rows = await db
    .selectFrom('provisioning_keys')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('id')
    .execute();
  return rows.map(toKey);
}

export async function revokeProvisioningKey(db: Db, fleetId: number, id: number): Promise<ProvisioningKey> {
  const row = await db
    .selectFrom('provisioning_keys')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('API_KEY_NOT_FOUND', `no provisioning key ${id} in this fleet`);
  const revoked_at = row.revoked_at ?? now();
  await db.updateTable('provisioning_keys').set({ revoked_at }).where('id', '=', id).execute();
  return toKey({ ...row, revoked_at });
}

/** The fleet a valid (unexpired, unrevoked) provisioning key belongs to, or undefined. */
export async function fleetOfProvisioningKey(
  db: Db,
  key: string,
): Promise<{ fleetId: number } | { expired: true } | undefined> {
  const row = await db
    .selectFrom('provisioning_keys')
    .select(['fleet_id', 'expires_at', 'revoked_at'])
    .where('key_hash', '=', hashKey(key))
    .executeTakeFirst();
  if (!row) return undefined;
  const at = now();
  if (row.revoked_at !== null || (row.expires_at !== null && row.expires_at <= at)) return { expired: true };
  return { fleetId: row.fleet_id };
}
