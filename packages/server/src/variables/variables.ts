import { FlotillaError, configVarKey } from '@flotilla/protocol';
import type { EnvVar } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpDevice, bumpFleet } from '../db/revisions.js';

/** Where a variable applies: a whole fleet, or one device of it. */
export type VariableOwner = { fleetId: number; deviceId: number | null };

async function bump(db: Db, owner: VariableOwner): Promise<void> {
  if (owner.deviceId === null) await bumpFleet(db, owner.fleetId);
  else await bumpDevice(db, owner.deviceId);
}

/**
 * Bumps the owner's revision as the first write of a set's transaction, which also locks the owner's row until
 * commit. INVARIANT: one variable per owner, name (and service): the tables have no unique key for it (device and
 * service may be NULL), so "update if it exists, else insert" must run one at a time per owner; without the lock,
 * concurrent sets on PostgreSQL each found nothing and each inserted a row.
 */
async function lockOwner(trx: Db, owner: VariableOwner): Promise<void> {
  await bump(trx, owner);
}

function scoped<Q extends { where: (...args: never[]) => unknown }>(q: Q, owner: VariableOwner): Q {
  // Kysely's builders are typed per table; this helper only applies the two owner filters common to both tables.
  const b = q as unknown as { where: (col: string, op: string, v: unknown) => typeof b };
  const out = b
    .where('fleet_id', '=', owner.fleetId)
    .where('device_id', owner.deviceId === null ? 'is' : '=', owner.deviceId);
  return out as unknown as Q;
}

// ------------------------------------------------------------------------------------------------ environment
export async function listEnv(db: Db, owner: VariableOwner): Promise<EnvVar[]> {
  const rows = await scoped(db.selectFrom('env_vars').selectAll(), owner).orderBy('id').execute();
  return rows.map((r) => ({ id: r.id, name: r.name, value: r.value, service: r.service, createdAt: r.created_at }));
}

/**
 * `upsert` replaces an existing value (the user API's PUT-like POST); `create` refuses it with CONFLICT, as balena's
 * API does for a POST to /v7/ (balena-sdk's upsert then PATCHes; the Supervisor's config report never overwrites).
 */
export type SetMode = 'upsert' | 'create';

/** The CONFLICT a `create` of an existing name gets. INVARIANT: the message says "unique" (pinejs-client upsert). */
function alreadyExists(what: string, name: string): FlotillaError {
  return new FlotillaError('CONFLICT', `unique constraint: ${what} "${name}" already exists; PATCH it to change it`);
}

export async function setEnv(
  db: Db,
  owner: VariableOwner,
  input: { name: string; value: string; service?: string | undefined },
  mode: SetMode = 'upsert',
): Promise<EnvVar> {
  const service = input.service ?? null;
  return db.transaction().execute(async (trx) => {
    await lockOwner(trx, owner);
    const existing = await scoped(trx.selectFrom('env_vars').selectAll(), owner)
      .where('name', '=', input.name)
      .where('service', service === null ? 'is' : '=', service)
      .executeTakeFirst();
    if (existing && mode === 'create') throw alreadyExists('environment variable', input.name);
    if (existing) {
      await trx.updateTable('env_vars').set({ value: input.value }).where('id', '=', existing.id).execute();
      return { id: existing.id, name: input.name, value: input.value, service, createdAt: existing.created_at };
    }
    const created_at = now();
    const row = await trx
      .insertInto('env_vars')
      .values({
        fleet_id: owner.fleetId,
        device_id: owner.deviceId,
        service,
        name: input.name,
        value: input.value,
        created_at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: row.id, name: input.name, value: input.value, service, createdAt: created_at };
  });
}

/**
 * Removes by name: the one of `service`; without it, every row of the name, unless `exact` (then only the one for
 * all services).
 */
export async function deleteEnv(
  db: Db,
  owner: VariableOwner,
  name: string,
  service?: string,
  exact = false,
): Promise<void> {
  let q = scoped(db.deleteFrom('env_vars'), owner).where('name', '=', name);
  if (service !== undefined) q = q.where('service', '=', service);
  else if (exact) q = q.where('service', 'is', null);
  const result = await q.executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw new FlotillaError('VARIABLE_NOT_FOUND', `no variable "${name}"`);
  await bump(db, owner);
}

// ------------------------------------------------------------------------------------------------------ config
export async function listConfig(db: Db, owner: VariableOwner): Promise<EnvVar[]> {
  const rows = await scoped(db.selectFrom('config_vars').selectAll(), owner).orderBy('id').execute();
  return rows.map((r) => ({ id: r.id, name: r.name, value: r.value, service: null, createdAt: r.created_at }));
}

export async function setConfig(
  db: Db,
  owner: VariableOwner,
  input: { name: string; value: string },
  mode: SetMode = 'upsert',
): Promise<EnvVar> {
  const key = configVarKey(input.name);
  return db.transaction().execute(async (trx) => {
    await lockOwner(trx, owner);
    const existing = await scoped(trx.selectFrom('config_vars').selectAll(), owner)
      .where('key', '=', key)
      .executeTakeFirst();
    if (existing && mode === 'create') throw alreadyExists('config variable', input.name);
    if (existing) {
      await trx
        .updateTable('config_vars')
        .set({ value: input.value, name: input.name })
        .where('id', '=', existing.id)
        .execute();
      return { id: existing.id, name: input.name, value: input.value, service: null, createdAt: existing.created_at };
    }
    const created_at = now();
    const row = await trx
      .insertInto('config_vars')
      .values({
        fleet_id: owner.fleetId,
        device_id: owner.deviceId,
        key,
        name: input.name,
        value: input.value,
        created_at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return { id: row.id, name: input.name, value: input.value, service: null, createdAt: created_at };
  });
}

export async function deleteConfig(db: Db, owner: VariableOwner, name: string): Promise<void> {
  const result = await scoped(db.deleteFrom('config_vars'), owner)
    .where('key', '=', configVarKey(name))
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0)
    throw new FlotillaError('VARIABLE_NOT_FOUND', `no config variable "${name}"`);
  await bump(db, owner);
}

// -------------------------------------------------------------------------------------------------------- tags
export async function listTags(db: Db, deviceId: number): Promise<{ key: string; value: string }[]> {
  return db
    .selectFrom('device_tags')
    .select(['key', 'value'])
    .where('device_id', '=', deviceId)
    .orderBy('key')
    .execute();
}

export async function setTag(
  db: Db,
  deviceId: number,
  key: string,
  value: string,
  mode: SetMode = 'upsert',
): Promise<{ key: string; value: string }> {
  const existing = await db
    .selectFrom('device_tags')
    .select('key')
    .where('device_id', '=', deviceId)
    .where('key', '=', key)
    .executeTakeFirst();
  if (existing && mode === 'create') throw alreadyExists('tag', key);
  if (existing)
    await db
      .updateTable('device_tags')
      .set({ value })
      .where('device_id', '=', deviceId)
      .where('key', '=', key)
      .execute();
  else await db.insertInto('device_tags').values({ device_id: deviceId, key, value }).execute();
  return { key, value };
}

export async function deleteTag(db: Db, deviceId: number, key: string): Promise<void> {
  const result = await db
    .deleteFrom('device_tags')
    .where('device_id', '=', deviceId)
    .where('key', '=', key)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw new FlotillaError('VARIABLE_NOT_FOUND', `no tag "${key}"`);
}

/** Fleet-wide tag view: each device's tags (tags belong to devices; the fleet route lists them all). */
export async function listFleetTags(
  db: Db,
  fleetId: number,
): Promise<{ device: string; key: string; value: string }[]> {
  return db
    .selectFrom('device_tags')
    .innerJoin('devices', 'devices.id', 'device_tags.device_id')
    .select(['devices.uuid as device', 'device_tags.key', 'device_tags.value'])
    .where('devices.fleet_id', '=', fleetId)
    .orderBy('devices.uuid')
    .orderBy('device_tags.key')
    .execute();
}
