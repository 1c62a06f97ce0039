import { type SqlBool, sql } from 'kysely';
import { type Caller, type Condition, FALSE, fleetVisible } from './caller.js';
import { type Expr, type Resource, col, f, same } from './resource-model.js';

/*
 * Services, images and service installs. Flotilla keeps one row per service of a release (release_services), so an
 * image (and its release_image link) is that row, and a service is a fleet's service name, its id the smallest such
 * row id and its created_at its first release's.
 */
export const SERVICE_TABLE = sql`(select min(rs.id) as id, r.fleet_id as fleet_id, rs.name as service_name, min(r.created_at) as created_at from release_services as rs join releases as r on r.id = rs.release_id group by r.fleet_id, rs.name)`;

const serviceIdOf: Expr = (a) =>
  sql`(select min(rs2.id) from release_services as rs2 join releases as r2 on r2.id = rs2.release_id where rs2.name = ${sql.ref(
    `${a}.name`,
  )} and r2.fleet_id = (select r3.fleet_id from releases as r3 where r3.id = ${sql.ref(`${a}.release_id`)}))`;
const releaseServiceScope = (a: string, caller: Caller, writing: boolean): Condition =>
  fleetVisible(sql`(select r.fleet_id from releases as r where r.id = ${sql.ref(`${a}.release_id`)})`, caller, writing);

/** The service id (SERVICE_TABLE) of a fleet's per-service variable row: its fleet and service name. */
export const serviceIdOfVariable: Expr = (a) =>
  sql`(select min(rs3.id) from release_services as rs3 join releases as r3 on r3.id = rs3.release_id where rs3.name = ${sql.ref(
    `${a}.service`,
  )} and r3.fleet_id = ${sql.ref(`${a}.fleet_id`)})`;

/**
 * Service installs: balena keeps a row per device and service of its fleet; Flotilla has no such table, so this is
 * every pair of a device and a service (SERVICE_TABLE) of the device's fleet, derived on each read.
 * INVARIANT: the id is the Cantor pairing of the device id d and the service id s, (d + s)(d + s + 1) / 2 + s, which
 * maps every pair to its own integer, so ids are unique without a table and stable while the device, its fleet and
 * the service's first release stay (a device moved to another fleet gets that fleet's installs). It stays an exact
 * JavaScript number while d + s < 2^27 (1.3 × 10^8); the bigint cast keeps the product from overflowing PostgreSQL's
 * 32-bit ids.
 * Its variables (device_service_environment_variable) are env_vars rows of the device with the service's name.
 */
export const SERVICE_INSTALL_TABLE = sql`(select (cast(d.id as bigint) + sv.id) * (cast(d.id as bigint) + sv.id + 1) / 2 + sv.id as id, d.id as device_id, d.fleet_id as fleet_id, sv.id as service_id, sv.service_name as service_name, case when d.created_at > sv.created_at then d.created_at else sv.created_at end as created_at from devices as d join ${SERVICE_TABLE} as sv on sv.fleet_id = d.fleet_id)`;

/** Joins a service install (`i`) to the device's env_vars rows for that service (`v`), either way round. */
export const installVariableJoin = (i: string, v: string): Condition =>
  sql<SqlBool>`${sql.ref(`${v}.device_id`)} = ${sql.ref(`${i}.device_id`)} and ${sql.ref(`${v}.service`)} = ${sql.ref(
    `${i}.service_name`,
  )}`;

export const service: Resource = {
  from: SERVICE_TABLE,
  fields: {
    id: f('integer', col('id')),
    service_name: f('text', col('service_name')),
    application: f('integer', col('fleet_id')),
    created_at: f('datetime', col('created_at')),
  },
  navigations: {
    application: { target: 'application', join: same('fleet_id'), idField: 'application' },
    service_environment_variable: {
      target: 'service_environment_variable',
      join: (s, t) =>
        sql<SqlBool>`${sql.ref(`${t}.fleet_id`)} = ${sql.ref(`${s}.fleet_id`)} and ${sql.ref(`${t}.service`)} = ${sql.ref(`${s}.service_name`)}`,
    },
    service_install: { target: 'service_install', join: same('id', 'service_id') },
  },
  alternateKeys: [],
  scope: (a, caller, writing) => fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing),
};

export const serviceInstall: Resource = {
  from: SERVICE_INSTALL_TABLE,
  fields: {
    id: f('integer', col('id')),
    device: f('integer', col('device_id')),
    installs__service: f('integer', col('service_id')),
    created_at: f('datetime', col('created_at')),
  },
  navigations: {
    device: { target: 'device', join: same('device_id'), idField: 'device' },
    installs__service: { target: 'service', join: same('service_id'), idField: 'installs__service' },
    device_service_environment_variable: {
      target: 'device_service_environment_variable',
      join: (s, t) => installVariableJoin(s, t),
    },
  },
  alternateKeys: [],
  // A device key reads its own installs; nothing writes an install (its variables are checked against this scope).
  scope: (a, caller, writing) => {
    if (caller.kind === 'user') return fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing);
    return writing ? FALSE : sql<SqlBool>`${sql.ref(`${a}.device_id`)} = ${caller.deviceId}`;
  },
};

export const image: Resource = {
  from: sql.table('release_services'),
  fields: {
    id: f('integer', col('id')),
    is_a_build_of__service: f('integer', serviceIdOf),
    is_stored_at__image_location: f('text', col('image')),
    status: f('text', (a) => sql`(select r.status from releases as r where r.id = ${sql.ref(`${a}.release_id`)})`),
  },
  navigations: {
    is_a_build_of__service: {
      target: 'service',
      join: (s, t) => sql<SqlBool>`${sql.ref(`${t}.id`)} = ${serviceIdOf(s)}`,
      idField: 'is_a_build_of__service',
    },
    release_image: { target: 'release_image', join: same('id') },
  },
  alternateKeys: [],
  scope: releaseServiceScope,
};

export const releaseImage: Resource = {
  from: sql.table('release_services'),
  fields: {
    id: f('integer', col('id')),
    image: f('integer', col('id')),
    is_part_of__release: f('integer', col('release_id')),
  },
  navigations: {
    image: { target: 'image', join: same('id'), idField: 'image' },
    is_part_of__release: { target: 'release', join: same('release_id'), idField: 'is_part_of__release' },
  },
  alternateKeys: [],
  scope: releaseServiceScope,
};
