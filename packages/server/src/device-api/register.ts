import { FlotillaError } from '@flotilla/protocol';
import type { RegisterRequest, RegisterResponse } from '@flotilla/protocol';
import { fleetOsFor } from '../os-releases/os-targets.js';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { tellLocal } from '../db/revisions.js';
import { hashKey } from '../auth/keys.js';
import { friendlyName } from '../devices/names.js';
import { isUniqueViolation } from '../errors/error-handler.js';
import { fleetOfProvisioningKey } from '../fleets/provisioning-keys.js';

/** The fleet a provisioning key may act on; 401 for an unknown key, PROVISIONING_KEY_EXPIRED for a dead one. */
export async function requireProvisioningKey(db: Db, key: string): Promise<number> {
  const found = await fleetOfProvisioningKey(db, key);
  if (!found) throw new FlotillaError('UNAUTHENTICATED', 'unknown provisioning key');
  if ('expired' in found)
    throw new FlotillaError('PROVISIONING_KEY_EXPIRED', 'the provisioning key has expired or was revoked');
  return found.fleetId;
}

/** INVARIANT: a provisioning key registers devices into its own fleet only. */
export async function registerDevice(db: Db, fleetId: number, input: RegisterRequest): Promise<RegisterResponse> {
  if (input.application !== fleetId)
    throw new FlotillaError('FORBIDDEN', 'the provisioning key belongs to another fleet');
  const existing = await db.selectFrom('devices').select('id').where('uuid', '=', input.uuid).executeTakeFirst();
  if (existing) throw new FlotillaError('DEVICE_ALREADY_REGISTERED', `device ${input.uuid} is already registered`);
  const keyHash = hashKey(input.api_key);
  const keyTaken = await db.selectFrom('devices').select('id').where('key_hash', '=', keyHash).executeTakeFirst();
  if (keyTaken) throw new FlotillaError('CONFLICT', 'choose another device key');
  const row = await insertDevice(db, fleetId, input, keyHash);
  return { id: row.id, uuid: input.uuid, api_key: input.api_key };
}

async function insertDevice(db: Db, fleetId: number, input: RegisterRequest, keyHash: string): Promise<{ id: number }> {
  try {
    return await insertDeviceRow(db, fleetId, input, keyHash);
  } catch (error) {
    // Two registrations of one UUID racing: the loser gets the answer it would have got a moment later.
    if (isUniqueViolation(error))
      throw new FlotillaError('DEVICE_ALREADY_REGISTERED', `device ${input.uuid} is already registered`);
    throw error;
  }
}

async function insertDeviceRow(
  db: Db,
  fleetId: number,
  input: RegisterRequest,
  keyHash: string,
): Promise<{ id: number }> {
  const targetOs = await fleetOsFor(db, fleetId, input.device_type);
  return db
    .insertInto('devices')
    .values({
      uuid: input.uuid,
      fleet_id: fleetId,
      name: friendlyName(),
      device_type: input.device_type,
      key_hash: keyHash,
      revision: 0,
      os_version: input.os_version ?? null,
      os_variant: input.os_variant ?? null,
      agent_version: input.supervisor_version ?? null,
      mac_address: input.mac_address ?? null,
      services_json: '{}',
      created_at: now(),
      target_os_release_id: targetOs,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
}

/** Key exchange: a device that registered but lost the answer proves itself with the provisioning key. */
export async function exchangeDeviceKey(db: Db, fleetId: number, deviceId: number, apiKey: string): Promise<void> {
  const device = await db
    .selectFrom('devices')
    .select(['id', 'fleet_id'])
    .where('id', '=', deviceId)
    .executeTakeFirst();
  if (!device || device.fleet_id !== fleetId)
    throw new FlotillaError('DEVICE_NOT_FOUND', `no device ${deviceId} in this fleet`);
  const keyHash = hashKey(apiKey);
  const holder = await db.selectFrom('devices').select('id').where('key_hash', '=', keyHash).executeTakeFirst();
  if (holder && holder.id !== deviceId) throw new FlotillaError('CONFLICT', 'choose another device key');
  await db.updateTable('devices').set({ key_hash: keyHash }).where('id', '=', deviceId).execute();
  tellLocal({ kind: 'device', id: deviceId });
}
