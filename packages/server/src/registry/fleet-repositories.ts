import { osRepository, parseOsRepository } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { RepositoryLocation } from './access.js';
import type { GcOptions, GcResult } from './gc.js';
import { collectGarbage, parseImageRef } from './gc.js';
import { organizationQuotaGroup } from './os-repositories.js';
import type { RegistryStorage } from './storage.js';

/**
 * Flotilla's repositories are named `<fleet slug>/<service>` but stored under `<fleet uuid>/<service>`.
 * INVARIANT: access and storage follow the fleet's identity. A slug is free again once its fleet is deleted; the
 * next fleet to take it gets a different uuid, hence empty repositories, and the old ones are unreachable by any
 * name until the collector removes them (whole, without waiting: see `orphaned` below).
 */
export function fleetRepositoryKey(fleetUuid: string, service: string): string {
  return `${fleetUuid}/${service}`;
}

function splitRepository(repository: string): { slug: string; service: string } | undefined {
  const slash = repository.indexOf('/');
  if (slash <= 0 || slash === repository.length - 1) return undefined;
  return { slug: repository.slice(0, slash), service: repository.slice(slash + 1) };
}

/** The storage of `<slug>/<service>` for the fleet that has that slug now; undefined when no fleet has it. */
export async function locateFleetRepository(db: Db, repository: string): Promise<RepositoryLocation | undefined> {
  const parts = splitRepository(repository);
  if (!parts) return undefined;
  const fleet = await db
    .selectFrom('fleets')
    .select(['uuid', 'organization_id'])
    .where('slug', '=', parts.slug)
    .executeTakeFirst();
  if (!fleet) return undefined;
  return {
    key: fleetRepositoryKey(fleet.uuid, parts.service),
    quotaGroup: () => organizationQuotaGroup(db, fleet.organization_id),
  };
}

/**
 * Registry garbage collection for Flotilla: the roots are the images of releases that have not failed, each taken
 * in its own release's fleet only (an image naming another fleet's slug protects nothing), and the repositories of
 * deleted fleets go whole.
 */
export async function collectFleetGarbage(
  db: Db,
  storage: RegistryStorage,
  options: Omit<GcOptions, 'keyOf' | 'orphaned'> = {},
): Promise<GcResult> {
  const rows = await db
    .selectFrom('release_services')
    .innerJoin('releases', 'releases.id', 'release_services.release_id')
    .innerJoin('fleets', 'fleets.id', 'releases.fleet_id')
    .select(['release_services.image', 'fleets.slug', 'fleets.uuid'])
    .where('releases.status', '!=', 'failed')
    .where('release_services.image', 'is not', null)
    .execute();
  const uuidBySlug = new Map<string, string>();
  const images: string[] = [];
  for (const row of rows) {
    const parts = row.image === null ? undefined : splitRepository(parseImageRef(row.image)?.repository ?? '');
    if (row.image === null || parts?.slug !== row.slug) continue;
    uuidBySlug.set(row.slug, row.uuid);
    images.push(row.image);
  }
  // OS releases' images are roots too, in their own organization's repository (os-repositories.ts).
  const osReleases = await db
    .selectFrom('os_releases')
    .select(['organization_id', 'device_type', 'manifest_digest'])
    .execute();
  for (const row of osReleases)
    images.push(`gc/${osRepository(row.organization_id, row.device_type)}@${row.manifest_digest}`);
  return collectGarbage(storage, images, {
    ...options,
    keyOf: (repository) => {
      if (parseOsRepository(repository)) return repository;
      const parts = splitRepository(repository);
      const uuid = parts && uuidBySlug.get(parts.slug);
      return parts && uuid ? fleetRepositoryKey(uuid, parts.service) : undefined;
    },
    // Asked after the folder was listed, and a fleet exists before anything can be pushed to it: a fleet created
    // meanwhile is found, so only truly deleted fleets count.
    orphaned: async (key) => {
      const os = parseOsRepository(key);
      if (os)
        return (
          (await db.selectFrom('organizations').select('id').where('id', '=', os.organizationId).executeTakeFirst()) ===
          undefined
        );
      // Every key this server writes is `<fleet uuid>/<service>`; a folder of any other shape belongs to no fleet.
      const slash = key.indexOf('/');
      if (slash <= 0) return true;
      const uuid = key.slice(0, slash);
      return (await db.selectFrom('fleets').select('id').where('uuid', '=', uuid).executeTakeFirst()) === undefined;
    },
  });
}
