import { FlotillaError } from '@flotilla/protocol';
import { hashKey, sameHash } from '../auth/keys.js';
import type { Db } from '../db/database.js';
import { fleetOfProvisioningKey } from '../fleets/provisioning-keys.js';

/** The one `$filter` a provisioning key may send: `uuid eq '<uuid>'`. */
export const FIND_SELF_FILTER = /^\s*uuid\s+eq\s+'([0-9a-f]{32}|[0-9a-f]{62})'\s*$/;

/**
 * `GET /v7/device?$filter=uuid eq '<uuid>'`, as balena clients ask it: the device's id, to its own key or to a
 * provisioning key of its fleet; an empty list to any other valid key.
 * INVARIANT: a key that is neither a device's nor a valid provisioning key is UNAUTHENTICATED, so the answer never
 * tells an unauthenticated caller whether a UUID exists.
 */
export async function findSelf(db: Db, uuid: string, key: string): Promise<{ d: { id: number }[] }> {
  const device = await db
    .selectFrom('devices')
    .select(['id', 'fleet_id', 'key_hash'])
    .where('uuid', '=', uuid)
    .executeTakeFirst();
  const keyHash = hashKey(key);
  if (device?.key_hash && sameHash(device.key_hash, keyHash)) return { d: [{ id: device.id }] };
  const provisioning = await fleetOfProvisioningKey(db, key);
  if (provisioning && 'fleetId' in provisioning)
    return { d: device && device.fleet_id === provisioning.fleetId ? [{ id: device.id }] : [] };
  // An unknown key that is not some device's key is not authenticated at all.
  const anyDevice = await db.selectFrom('devices').select('id').where('key_hash', '=', keyHash).executeTakeFirst();
  if (!anyDevice) throw new FlotillaError('UNAUTHENTICATED', 'unknown key');
  return { d: [] };
}
