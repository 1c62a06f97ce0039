import {
  FlotillaError,
  odataDeviceConfigCreateSchema,
  odataDeviceEnvCreateSchema,
  odataDeviceServiceEnvCreateSchema,
  odataDevicePatchSchema,
  odataDeviceTagCreateSchema,
  odataDeviceTagPatchSchema,
  odataFleetConfigCreateSchema,
  odataFleetEnvCreateSchema,
  odataServiceEnvCreateSchema,
  odataVariablePatchSchema,
} from '@flotilla/protocol';
import { sql } from 'kysely';
import type { AppContext } from '../context.js';
import type { Db } from '../db/database.js';
import { bumpDevice, bumpFleet } from '../db/revisions.js';
import { parse } from '../http/parse.js';
import { findRelease } from '../releases/releases.js';
import { deleteTag, setConfig, setEnv, setTag } from '../variables/variables.js';
import type { Caller } from './caller.js';
import { type Scope, and, filterSql } from './filter-sql.js';
import { type Expr, invalidQuery } from './parser.js';
import { RESOURCES, type Resource, type ResourceName } from './resources.js';

/**
 * Writes through the OData layer, each through the same domain functions as /api/v1 (variables.ts, releases.ts), so
 * revisions are bumped and names validated alike.
 * INVARIANT: the rows a PATCH or DELETE touches are chosen with the resource's writing scope (a user: organizations
 * where their role may write; a device key: its own device), and a POST's owner must be in that scope too.
 */

type Row = Record<string, unknown>;

const eq = (field: string, value: number | string): Expr => ({
  kind: 'compare',
  op: 'eq',
  left: { kind: 'path', path: [field] },
  right: { kind: 'literal', value },
});

/** The raw `columns` of the rows of `resource` that `filter` selects and the caller may change. */
async function rowsToWrite(
  db: Db,
  caller: Caller,
  resource: Resource,
  filter: Expr | undefined,
  columns: string[],
): Promise<Row[]> {
  if (!filter) throw invalidQuery('a PATCH or DELETE names its rows by key or $filter');
  const alias = 'o0';
  const scope: Scope = { aliases: new Map(), root: { resource, alias }, caller, next: { n: 0 } };
  const where = [resource.scope(alias, caller, true), filterSql(filter, scope)];
  if (resource.where) where.push(resource.where(alias));
  const result = await sql<Row>`select ${sql.join(columns.map((c) => sql.ref(`${alias}.${c}`)))} from ${
    resource.from
  } as ${sql.id(alias)} where ${and(where)} limit 10001`.execute(db);
  if (result.rows.length > 10_000) throw invalidQuery('a PATCH or DELETE touches at most 10,000 rows');
  return result.rows;
}

/** The owner row (device or fleet) a POST names, if the caller may write to it. */
async function ownerFor(
  db: Db,
  caller: Caller,
  kind: 'device' | 'application',
  id: number,
): Promise<{ fleetId: number; deviceId: number | null }> {
  const rows = await rowsToWrite(
    db,
    caller,
    RESOURCES[kind],
    eq('id', id),
    kind === 'device' ? ['id', 'fleet_id'] : ['id'],
  );
  const row = rows[0];
  if (!row)
    throw new FlotillaError(
      kind === 'device' ? 'DEVICE_NOT_FOUND' : 'FLEET_NOT_FOUND',
      `no ${kind} ${id} that you may change`,
    );
  return kind === 'device'
    ? { fleetId: Number(row.fleet_id), deviceId: Number(row.id) }
    : { fleetId: Number(row.id), deviceId: null };
}

/** Creates the entity; answers the filter that reads it back. */
export async function createEntity(db: Db, caller: Caller, name: ResourceName, body: unknown): Promise<Expr> {
  if (caller.kind === 'device' && name !== 'device_config_variable' && name !== 'device_tag')
    throw new FlotillaError('FORBIDDEN', 'a device key creates only its own config variables and tags');
  switch (name) {
    case 'device_environment_variable': {
      const input = parse(odataDeviceEnvCreateSchema, body);
      const created = await setEnv(db, await ownerFor(db, caller, 'device', input.device), input, 'create');
      return eq('id', created.id);
    }
    case 'device_config_variable': {
      const input = parse(odataDeviceConfigCreateSchema, body);
      const created = await setConfig(db, await ownerFor(db, caller, 'device', input.device), input, 'create');
      return eq('id', created.id);
    }
    case 'application_environment_variable': {
      const input = parse(odataFleetEnvCreateSchema, body);
      const created = await setEnv(db, await ownerFor(db, caller, 'application', input.application), input, 'create');
      return eq('id', created.id);
    }
    case 'application_config_variable': {
      const input = parse(odataFleetConfigCreateSchema, body);
      const created = await setConfig(
        db,
        await ownerFor(db, caller, 'application', input.application),
        input,
        'create',
      );
      return eq('id', created.id);
    }
    case 'service_environment_variable': {
      const input = parse(odataServiceEnvCreateSchema, body);
      // The service names its fleet: the caller must be able to change that fleet's variables.
      const [service] = await rowsToWrite(db, caller, RESOURCES.service, eq('id', input.service), [
        'fleet_id',
        'service_name',
      ]);
      if (!service) throw new FlotillaError('SERVICE_NOT_FOUND', `no service ${input.service} that you may change`);
      const owner = { fleetId: Number(service.fleet_id), deviceId: null };
      const created = await setEnv(db, owner, { ...input, service: String(service.service_name) }, 'create');
      return eq('id', created.id);
    }
    case 'device_service_environment_variable': {
      const input = parse(odataDeviceServiceEnvCreateSchema, body);
      // The install names the device and the service: the caller must be able to change that device's variables.
      const [install] = await rowsToWrite(db, caller, RESOURCES.service_install, eq('id', input.service_install), [
        'device_id',
        'fleet_id',
        'service_name',
      ]);
      if (!install)
        throw new FlotillaError('SERVICE_NOT_FOUND', `no service install ${input.service_install} that you may change`);
      const owner = { fleetId: Number(install.fleet_id), deviceId: Number(install.device_id) };
      const created = await setEnv(
        db,
        owner,
        { name: input.name, value: input.value, service: String(install.service_name) },
        'create',
      );
      return eq('id', created.id);
    }
    case 'device_tag': {
      const input = parse(odataDeviceTagCreateSchema, body);
      const owner = await ownerFor(db, caller, 'device', input.device);
      await setTag(db, owner.deviceId as number, input.tag_key, input.value, 'create');
      return { kind: 'and', left: eq('device', input.device), right: eq('tag_key', input.tag_key) };
    }
    default:
      throw invalidQuery(`${name} cannot be created here`);
  }
}

const VARIABLE_TABLES: Partial<Record<ResourceName, 'env_vars' | 'config_vars'>> = {
  device_environment_variable: 'env_vars',
  device_config_variable: 'config_vars',
  application_environment_variable: 'env_vars',
  application_config_variable: 'config_vars',
  service_environment_variable: 'env_vars',
  device_service_environment_variable: 'env_vars',
};

async function bumpOwners(db: Db, rows: Row[]): Promise<void> {
  const devices = new Set(rows.filter((r) => r.device_id !== null).map((r) => Number(r.device_id)));
  const fleets = new Set(rows.filter((r) => r.device_id === null).map((r) => Number(r.fleet_id)));
  for (const id of devices) await bumpDevice(db, id);
  for (const id of fleets) await bumpFleet(db, id);
}

/** PATCH: answers how many rows changed. */
export async function updateEntities(
  ctx: AppContext,
  caller: Caller,
  name: ResourceName,
  filter: Expr | undefined,
  body: unknown,
): Promise<number> {
  const { db } = ctx;
  const resource = RESOURCES[name];
  const table = VARIABLE_TABLES[name];
  if (table) {
    const input = parse(odataVariablePatchSchema, body);
    const rows = await rowsToWrite(db, caller, resource, filter, ['id', 'fleet_id', 'device_id']);
    if (rows.length === 0) return 0;
    const ids = rows.map((r) => Number(r.id));
    await db.updateTable(table).set({ value: input.value }).where('id', 'in', ids).execute();
    await bumpOwners(db, rows);
    return rows.length;
  }
  if (name === 'device_tag') {
    const input = parse(odataDeviceTagPatchSchema, body);
    const rows = await rowsToWrite(db, caller, resource, filter, ['device_id', 'key']);
    for (const row of rows) await setTag(db, Number(row.device_id), String(row.key), input.value);
    return rows.length;
  }
  if (name === 'device') {
    const input = parse(odataDevicePatchSchema, body);
    const rows = await rowsToWrite(db, caller, resource, filter, ['id', 'fleet_id']);
    const pins = [input.should_be_running__release, input.is_pinned_on__release].filter((p) => p !== undefined);
    if (pins.length === 2 && pins[0] !== pins[1])
      throw new FlotillaError('VALIDATION_FAILED', 'should_be_running__release and is_pinned_on__release differ');
    for (const row of rows) {
      const deviceId = Number(row.id);
      const patch: { name?: string; pinned_release_id?: number | null; os_version?: string | null } & {
        os_variant?: string | null;
        agent_version?: string | null;
      } = {};
      if (input.device_name !== undefined) patch.name = input.device_name;
      if (input.os_version !== undefined) patch.os_version = input.os_version;
      if (input.os_variant !== undefined) patch.os_variant = input.os_variant;
      if (input.supervisor_version !== undefined) patch.agent_version = input.supervisor_version;
      const pin = pins[0];
      // A pin must name a release of the device's own fleet (findRelease answers RELEASE_NOT_FOUND otherwise).
      if (pin !== undefined)
        patch.pinned_release_id = pin === null ? null : (await findRelease(db, Number(row.fleet_id), pin)).id;
      if (Object.keys(patch).length === 0) continue;
      await db.updateTable('devices').set(patch).where('id', '=', deviceId).execute();
      await bumpDevice(db, deviceId);
    }
    ctx.deviceChanges.changed(rows.map((r) => Number(r.id)));
    return rows.length;
  }
  throw invalidQuery(`${name} cannot be changed here`);
}

/** DELETE: answers how many rows went. */
export async function deleteEntities(
  db: Db,
  caller: Caller,
  name: ResourceName,
  filter: Expr | undefined,
): Promise<number> {
  const resource = RESOURCES[name];
  const table = VARIABLE_TABLES[name];
  if (table) {
    const rows = await rowsToWrite(db, caller, resource, filter, ['id', 'fleet_id', 'device_id']);
    if (rows.length === 0) return 0;
    await db
      .deleteFrom(table)
      .where(
        'id',
        'in',
        rows.map((r) => Number(r.id)),
      )
      .execute();
    await bumpOwners(db, rows);
    return rows.length;
  }
  if (name === 'device_tag') {
    const rows = await rowsToWrite(db, caller, resource, filter, ['device_id', 'key']);
    for (const row of rows) await deleteTag(db, Number(row.device_id), String(row.key));
    return rows.length;
  }
  throw invalidQuery(`${name} cannot be deleted here`);
}
