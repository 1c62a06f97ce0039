import { osRepository, parseOsRepository } from '@flotilla/protocol';
import type { RegistryPrincipal } from '../auth/registry-access.js';
import type { Db } from '../db/database.js';
import type { RepositoryLocation } from './access.js';
import type { RegistryAction } from './access.js';

/**
 * OS release repositories, `os.<organization id>/<device type>` (protocol `osRepository`), stored under that same
 * key: organization ids are never reused (organizations are not deleted, and their ids are never handed out again),
 * so the name is an identity. Their blobs count against the organization's quota with its fleets'.
 */
export async function locateOsRepository(db: Db, repository: string): Promise<RepositoryLocation | undefined> {
  const os = parseOsRepository(repository);
  if (!os) return undefined;
  const org = await db.selectFrom('organizations').select('id').where('id', '=', os.organizationId).executeTakeFirst();
  if (!org) return undefined;
  return {
    key: osRepository(os.organizationId, os.deviceType),
    quotaGroup: () => organizationQuotaGroup(db, os.organizationId),
  };
}

/** Key prefixes of everything an organization stores: its fleets' repositories and its OS releases'. */
export async function organizationQuotaGroup(db: Db, organizationId: number): Promise<string[]> {
  const fleets = await db.selectFrom('fleets').select('uuid').where('organization_id', '=', organizationId).execute();
  return [...fleets.map((f) => f.uuid), `os.${organizationId}`];
}

/**
 * Users of the organization pull; its admins and members push (an observer never does). Devices get their OS image
 * through their own download route (DEVICE_ROUTES.osImage), not the registry.
 */
export function osRepositoryAllows(
  principal: RegistryPrincipal,
  organizationId: number,
  action: RegistryAction,
): boolean {
  if (principal.kind !== 'user') return false;
  return (action === 'pull' ? principal.orgIds : principal.writerOrgIds).includes(organizationId);
}
