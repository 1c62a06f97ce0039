import { FlotillaError, type ODataWhoami, WRITER_ROLES } from '@flotilla/protocol';
import type { FastifyRequest } from 'fastify';
import { bearerToken, hashKey } from '../auth/keys.js';
import { userFromToken } from '../auth/principal.js';
import type { Db } from '../db/database.js';
import type { Caller } from './caller.js';

/**
 * The caller of an OData request from its bearer key (or `?apikey=`, as balena clients may send it): a device key
 * (the Supervisor) or a user's API key or session token. Undefined for any other key, which the route may still
 * accept for the one provisioning-key question (find-self.ts); the dashboard's cookie is not taken here.
 */
export async function callerOf(db: Db, request: FastifyRequest): Promise<{ caller?: Caller; key: string }> {
  const key = bearerToken(request.headers.authorization, request.query);
  if (!key) throw new FlotillaError('UNAUTHENTICATED', 'missing Authorization: Bearer <api key or device key>');
  const device = await db
    .selectFrom('devices')
    .select(['id', 'fleet_id'])
    .where('key_hash', '=', hashKey(key))
    .executeTakeFirst();
  if (device) return { caller: { kind: 'device', deviceId: device.id, fleetId: device.fleet_id }, key };
  const user = await userFromToken(db, key);
  if (!user) return { key };
  const roles = [...user.roles];
  return {
    caller: {
      kind: 'user',
      userId: user.userId,
      orgIds: roles.map(([id]) => id),
      writerOrgIds: roles.filter(([, role]) => WRITER_ROLES.includes(role)).map(([id]) => id),
    },
    key,
  };
}

/** balena's `/actor/v1/whoami` answer for a caller. Flotilla has no separate actor ids: `id` is the user's or device's. */
export async function whoami(db: Db, caller: Caller): Promise<ODataWhoami> {
  if (caller.kind === 'device') {
    const device = await db
      .selectFrom('devices')
      .select('uuid')
      .where('id', '=', caller.deviceId)
      .executeTakeFirstOrThrow();
    return { id: caller.deviceId, actorType: 'device', actorTypeId: caller.deviceId, uuid: device.uuid };
  }
  const user = await db
    .selectFrom('users')
    .select(['username', 'email'])
    .where('id', '=', caller.userId)
    .executeTakeFirstOrThrow();
  return {
    id: caller.userId,
    actorType: 'user',
    actorTypeId: caller.userId,
    username: user.username,
    email: user.email,
  };
}
