import { type SqlBool, sql } from 'kysely';
import { FALSE, fleetVisible } from './caller.js';
import { type Field, type Resource, col, f, same } from './resource-model.js';
import { SERVICE_INSTALL_TABLE, installVariableJoin, serviceIdOfVariable } from './service-resources.js';

/*
 * Environment and config variables. Every kind is rows of env_vars or config_vars, told apart by which of device_id
 * and service are set (`where`), so a value written here is the one /api/v1 lists and target state merges.
 */

/** The fields every variable resource has, whatever it hangs off. */
const variableFields: Record<string, Field> = {
  id: f('integer', col('id')),
  name: f('text', col('name')),
  value: f('text', col('value')),
  created_at: f('datetime', col('created_at')),
};

export const variable = (owner: 'application' | 'device', table: 'env_vars' | 'config_vars'): Resource => ({
  from: sql.table(table),
  fields: {
    ...variableFields,
    [owner]: f('integer', col(owner === 'device' ? 'device_id' : 'fleet_id')),
  },
  navigations: {
    [owner]: {
      target: owner,
      join: same(owner === 'device' ? 'device_id' : 'fleet_id'),
      idField: owner,
    },
  },
  alternateKeys: [],
  scope: (a, caller, writing) => {
    if (caller.kind === 'user') return fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing);
    // INVARIANT: a device key writes only what it reports about itself: its own config variables (the
    // Supervisor's first-boot report). Its fleet's variables and its environment are read-only to it.
    if (writing && (owner !== 'device' || table !== 'config_vars')) return FALSE;
    return owner === 'device'
      ? sql<SqlBool>`${sql.ref(`${a}.device_id`)} = ${caller.deviceId}`
      : fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing);
  },
  where: (a) => {
    const ownerCondition = sql<SqlBool>`${sql.ref(`${a}.device_id`)} is ${owner === 'device' ? sql`not null` : sql`null`}`;
    return table === 'env_vars'
      ? sql<SqlBool>`${ownerCondition} and ${sql.ref(`${a}.service`)} is null`
      : ownerCondition;
  },
});

/**
 * A fleet's environment variable for one service (env_vars with a service and no device), as balena-sdk's
 * `service.var.*` reads and writes it. A device key reads those of its fleet and writes none.
 */
export const serviceVariable: Resource = {
  from: sql.table('env_vars'),
  fields: { ...variableFields, service: f('integer', serviceIdOfVariable) },
  navigations: {
    service: {
      target: 'service',
      join: (s, t) => sql<SqlBool>`${sql.ref(`${t}.id`)} = ${serviceIdOfVariable(s)}`,
      idField: 'service',
    },
  },
  alternateKeys: [],
  scope: (a, caller, writing) =>
    caller.kind === 'device' && writing ? FALSE : fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing),
  where: (a) => sql<SqlBool>`${sql.ref(`${a}.device_id`)} is null and ${sql.ref(`${a}.service`)} is not null`,
};

/**
 * A device's environment variable for one service (env_vars with a device and a service), as balena-sdk's
 * `device.serviceVar.*` reads and writes it. Its service_install is the device's install of the fleet's service of
 * that name; a variable set through /api/v1 for a service no release has yet has none (null) until one does.
 * A device key reads its own and writes none.
 */
export const deviceServiceVariable: Resource = {
  from: sql.table('env_vars'),
  fields: {
    ...variableFields,
    service_install: f(
      'integer',
      (a) => sql`(select si.id from ${SERVICE_INSTALL_TABLE} as si where ${installVariableJoin('si', a)})`,
    ),
  },
  navigations: {
    service_install: {
      target: 'service_install',
      join: (s, t) => installVariableJoin(t, s),
      idField: 'service_install',
    },
  },
  alternateKeys: [],
  scope: (a, caller, writing) => {
    if (caller.kind === 'user') return fleetVisible(sql.ref(`${a}.fleet_id`), caller, writing);
    return writing ? FALSE : sql<SqlBool>`${sql.ref(`${a}.device_id`)} = ${caller.deviceId}`;
  },
  where: (a) => sql<SqlBool>`${sql.ref(`${a}.device_id`)} is not null and ${sql.ref(`${a}.service`)} is not null`,
};
