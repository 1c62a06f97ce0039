import { type SqlBool, sql } from 'kysely';
import { type Caller, type Condition, fleetVisible } from './caller.js';
import { type Expr, type Resource, col, f, same } from './resource-model.js';

/*
 * Services and images. Flotilla keeps one row per service of a release (release_services), so an
 * image (and its release_image link) is that row, and a service is a fleet's service name, its id the smallest such
 * row id.
 */
export const SERVICE_TABLE = sql`(select min(rs.id) as id, r.fleet_id as fleet_id, rs.name as service_name from release_services as rs join releases as r on r.id = rs.release_id group by r.fleet_id, rs.name)`;

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

export const service: Resource = {
  from: SERVICE_TABLE,
  fields: {
    id: f('integer', col('id')),
    service_name: f('text', col('service_name')),
    application: f('integer', col('fleet_id')),
  },
  navigations: {
    application: { target: 'application', join: same('fleet_id'), idField: 'application' },
    service_environment_variable: {
      target: 'service_environment_variable',
      join: (s, t) =>
        sql<SqlBool>`${sql.ref(`${t}.fleet_id`)} = ${sql.ref(`${s}.fleet_id`)} and ${sql.ref(`${t}.service`)} = ${sql.ref(`${s}.service_name`)}`,
    },
  },
  alternateKeys: [],
  scope: (a, caller, writing) => fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing),
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
