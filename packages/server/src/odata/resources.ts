import { DEVICE_TYPES } from '@flotilla/protocol';
import { sql } from 'kysely';
import { ONLINE_WINDOW_MS } from '../fleets/fleets.js';
import { FALSE, TRUE, fleetVisible, inIds, orgsOf } from './caller.js';
import { type Expr, type Resource, type ResourceName, bool, col, constant, f, same } from './resource-model.js';
import { image, releaseImage, service, serviceInstall } from './service-resources.js';
import { deviceServiceVariable, serviceVariable, variable } from './variable-resources.js';

export type { Field, FieldType, Navigation, Resource, ResourceName } from './resource-model.js';

/**
 * The allow-list: which balena resources, fields and navigations the OData layer serves, and the SQL each maps to
 * (services and variables are in service-resources.ts and variable-resources.ts).
 * INVARIANT: nothing outside the allow-list names a table or column from a request; a name missing here is a 400.
 */

// Device types are protocol constants, not a table: a fixed VALUES-like union, ids by position in the list.
for (const slug of DEVICE_TYPES) if (!/^[a-z0-9-]+$/.test(slug)) throw new Error(`device type ${slug} is not a slug`);
const DEVICE_TYPE_TABLE = sql`(${sql.join(
  DEVICE_TYPES.map((slug, i) => sql`select ${sql.lit(i + 1)} as id, ${sql.lit(slug)} as slug`),
  sql` union all `,
)})`;
const deviceTypeId =
  (slugColumn: Expr): Expr =>
  (a) =>
    sql`(select dt.id from ${DEVICE_TYPE_TABLE} as dt where dt.slug = ${slugColumn(a)})`;

export const RESOURCES = {
  organization: {
    from: sql.table('organizations'),
    fields: {
      id: f('integer', col('id')),
      name: f('text', col('name')),
      handle: f('text', col('handle')),
      created_at: f('datetime', col('created_at')),
    },
    navigations: { application: { target: 'application', join: same('id', 'organization_id') } },
    alternateKeys: ['handle'],
    scope: (a, caller, writing) =>
      caller.kind === 'device'
        ? sql`${sql.ref(`${a}.id`)} = (select f.organization_id from fleets as f where f.id = ${caller.fleetId})`
        : inIds(sql.ref(`${a}.id`), orgsOf(caller, writing)),
  },
  user: {
    from: sql.table('users'),
    fields: { id: f('integer', col('id')), username: f('text', col('username')) },
    navigations: {},
    alternateKeys: ['username'],
    scope: (a, caller, writing) =>
      caller.kind === 'device'
        ? FALSE
        : sql`${sql.ref(`${a}.id`)} in (select m.user_id from memberships as m where ${inIds(
            sql.ref('m.organization_id'),
            orgsOf(caller, writing),
          )})`,
  },
  device_type: {
    from: DEVICE_TYPE_TABLE,
    fields: { id: f('integer', col('id')), slug: f('text', col('slug')), name: f('text', col('slug')) },
    navigations: {},
    alternateKeys: ['slug'],
    scope: () => TRUE,
  },
  application: {
    from: sql.table('fleets'),
    fields: {
      id: f('integer', col('id')),
      uuid: f('text', col('uuid')),
      app_name: f('text', col('name')),
      slug: f('text', col('slug')),
      created_at: f('datetime', col('created_at')),
      organization: f('integer', col('organization_id')),
      is_for__device_type: f('integer', deviceTypeId(col('device_type'))),
      should_be_running__release: f('integer', col('pinned_release_id')),
      should_track_latest_release: bool((a) => sql`${sql.ref(`${a}.pinned_release_id`)} is null`),
      is_of__class: constant('text', 'fleet'),
      is_host: constant('boolean', 0),
      is_archived: constant('boolean', 0),
      is_public: constant('boolean', 0),
    },
    navigations: {
      organization: { target: 'organization', join: same('organization_id'), idField: 'organization' },
      is_for__device_type: {
        target: 'device_type',
        join: (s, t) => sql`${sql.ref(`${t}.slug`)} = ${sql.ref(`${s}.device_type`)}`,
        idField: 'is_for__device_type',
      },
      should_be_running__release: {
        target: 'release',
        join: same('pinned_release_id'),
        idField: 'should_be_running__release',
      },
      owns__device: { target: 'device', join: same('id', 'fleet_id') },
      owns__release: { target: 'release', join: same('id', 'fleet_id') },
      application_environment_variable: { target: 'application_environment_variable', join: same('id', 'fleet_id') },
      // balena-sdk's service.getAllByApplication expands it.
      service: { target: 'service', join: same('id', 'fleet_id') },
      application_config_variable: { target: 'application_config_variable', join: same('id', 'fleet_id') },
      is_directly_accessible_by__user: {
        target: 'user',
        join: (s, t) =>
          sql`${sql.ref(`${t}.id`)} in (select m.user_id from memberships as m where m.organization_id = ${sql.ref(
            `${s}.organization_id`,
          )})`,
      },
    },
    alternateKeys: ['slug', 'uuid'],
    // A device key reads its own fleet and changes none.
    scope: (a, caller, writing) =>
      caller.kind === 'device' && writing ? FALSE : fleetVisible(sql.ref(`${a}.id`), caller, writing),
  },
  device: {
    from: sql.table('devices'),
    fields: {
      id: f('integer', col('id')),
      uuid: f('text', col('uuid')),
      device_name: f('text', col('name')),
      belongs_to__application: f('integer', col('fleet_id')),
      is_of__device_type: f('integer', deviceTypeId(col('device_type'))),
      is_pinned_on__release: f('integer', col('pinned_release_id')),
      should_be_running__release: f('integer', col('pinned_release_id')),
      is_running__release: f(
        'integer',
        (a) =>
          sql`(select r.id from releases as r where r.fleet_id = ${sql.ref(`${a}.fleet_id`)} and ${sql.ref(
            'r.commit',
          )} = ${sql.ref(`${a}.running_release`)})`,
      ),
      status: f('text', col('status')),
      // The cut-off is computed per query (an ISO text, as last_seen_at is): no dialect-specific date function.
      is_online: bool(
        (a) => sql`${sql.ref(`${a}.last_seen_at`)} > ${new Date(Date.now() - ONLINE_WINDOW_MS).toISOString()}`,
      ),
      last_connectivity_event: f('datetime', col('last_seen_at')),
      os_version: f('text', col('os_version')),
      os_variant: f('text', col('os_variant')),
      supervisor_version: f('text', col('agent_version')),
      ip_address: f('text', col('ip_address')),
      mac_address: f('text', col('mac_address')),
      cpu_usage: f('number', col('cpu_usage')),
      cpu_temp: f('number', col('cpu_temp')),
      memory_usage: f('number', col('memory_usage')),
      memory_total: f('number', col('memory_total')),
      storage_usage: f('number', col('storage_usage')),
      storage_total: f('number', col('storage_total')),
      created_at: f('datetime', col('created_at')),
    },
    navigations: {
      belongs_to__application: {
        target: 'application',
        join: same('fleet_id'),
        idField: 'belongs_to__application',
      },
      is_of__device_type: {
        target: 'device_type',
        join: (s, t) => sql`${sql.ref(`${t}.slug`)} = ${sql.ref(`${s}.device_type`)}`,
        idField: 'is_of__device_type',
      },
      is_pinned_on__release: { target: 'release', join: same('pinned_release_id'), idField: 'is_pinned_on__release' },
      should_be_running__release: {
        target: 'release',
        join: same('pinned_release_id'),
        idField: 'should_be_running__release',
      },
      device_tag: { target: 'device_tag', join: same('id', 'device_id') },
      device_environment_variable: { target: 'device_environment_variable', join: same('id', 'device_id') },
      device_config_variable: { target: 'device_config_variable', join: same('id', 'device_id') },
      // balena-sdk's device.serviceVar.* filters through it.
      service_install: { target: 'service_install', join: same('id', 'device_id') },
    },
    alternateKeys: ['uuid'],
    scope: (a, caller, writing) =>
      caller.kind === 'device'
        ? sql`${sql.ref(`${a}.id`)} = ${caller.deviceId}`
        : fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing),
  },
  release: {
    from: sql.table('releases'),
    fields: {
      id: f('integer', col('id')),
      commit: f('text', col('commit')),
      raw_version: f('text', col('version')),
      semver: f('text', col('version')),
      status: f('text', col('status')),
      is_final: bool((a) => sql`${sql.ref(`${a}.is_final`)} = 1`),
      is_invalidated: constant('boolean', 0),
      note: f('text', col('notes')),
      created_at: f('datetime', col('created_at')),
      belongs_to__application: f('integer', col('fleet_id')),
      is_created_by__user: f('integer', col('created_by')),
    },
    navigations: {
      belongs_to__application: {
        target: 'application',
        join: same('fleet_id'),
        idField: 'belongs_to__application',
      },
      is_created_by__user: { target: 'user', join: same('created_by'), idField: 'is_created_by__user' },
      contains__image: { target: 'release_image', join: same('id', 'release_id') },
      release_image: { target: 'release_image', join: same('id', 'release_id') },
    },
    alternateKeys: ['commit'],
    scope: (a, caller, writing) => fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing),
  },
  device_tag: {
    from: sql.table('device_tags'),
    fields: {
      id: f('integer', col('id')),
      device: f('integer', col('device_id')),
      tag_key: f('text', col('key')),
      value: f('text', col('value')),
    },
    navigations: { device: { target: 'device', join: same('device_id'), idField: 'device' } },
    alternateKeys: [],
    scope: (a, caller, writing) =>
      caller.kind === 'device'
        ? sql`${sql.ref(`${a}.device_id`)} = ${caller.deviceId}`
        : sql`${sql.ref(`${a}.device_id`)} in (select d.id from devices as d where ${fleetVisible(
            sql.ref('d.fleet_id'),
            caller,
            writing,
          )})`,
  },
  service,
  service_install: serviceInstall,
  image,
  release_image: releaseImage,
  application_environment_variable: variable('application', 'env_vars'),
  application_config_variable: variable('application', 'config_vars'),
  device_environment_variable: variable('device', 'env_vars'),
  service_environment_variable: serviceVariable,
  device_service_environment_variable: deviceServiceVariable,
  device_config_variable: variable('device', 'config_vars'),
} satisfies Record<ResourceName, Resource>;

export function resourceNamed(name: string): Resource | undefined {
  return Object.hasOwn(RESOURCES, name) ? (RESOURCES as Record<string, Resource>)[name] : undefined;
}
