import { randomBytes } from 'node:crypto';
import { FlotillaError, commitSchema, platformOfDeviceType } from '@flotilla/protocol';
import type { ComposeFile, Release, ReleaseStatus } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpFleet, lockFleet } from '../db/revisions.js';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds } from '../auth/principal.js';
import type { ImageOwner } from '../registry/image-size.js';
import { nextVersion } from './versions.js';

export interface ReleaseRow {
  id: number;
  fleet_id: number;
  commit: string;
  version: string;
  status: ReleaseStatus;
  is_final: number;
  composition_json: string;
  notes: string | null;
  created_at: string;
  created_by: number | null;
}

/** A release of the fleet by id or commit (a unique prefix of 7+ hex characters is enough). */
export async function findRelease(db: Db, fleetId: number, ref: number | string): Promise<ReleaseRow> {
  const rows = await releaseQuery(db, ref).where('fleet_id', '=', fleetId).limit(2).execute();
  return single(rows, ref);
}

function releaseQuery(db: Db, ref: number | string) {
  const q = db.selectFrom('releases').selectAll('releases');
  if (typeof ref === 'number' || /^\d{1,6}$/.test(ref)) {
    // A short all-digit reference is an id; commits this short are refused by commitSchema anyway.
    return q.where('releases.id', '=', Number(ref));
  }
  if (!commitSchema.safeParse(ref).success) return q.where('releases.id', '=', -1);
  return ref.length >= 32 ? q.where('releases.commit', '=', ref) : q.where('releases.commit', 'like', `${ref}%`);
}

function single(rows: ReleaseRow[], ref: number | string): ReleaseRow {
  if (rows.length > 1)
    throw new FlotillaError('AMBIGUOUS_REFERENCE', `"${ref}" matches more than one release; give more characters`);
  const row = rows[0];
  if (!row) throw new FlotillaError('RELEASE_NOT_FOUND', `no release "${ref}"`);
  return row;
}

/** A release in any fleet of the user's organizations. */
export async function visibleRelease(db: Db, user: UserPrincipal, ref: string): Promise<ReleaseRow> {
  const ids = orgIds(user);
  if (ids.length === 0) throw new FlotillaError('RELEASE_NOT_FOUND', `no release "${ref}"`);
  const rows = await releaseQuery(db, ref)
    .innerJoin('fleets', 'fleets.id', 'releases.fleet_id')
    .where('fleets.organization_id', 'in', ids)
    .limit(2)
    .execute();
  return single(rows, ref);
}

/** Reads the bytes of a release's images (registry/image-size.ts); a test may give a registry-less one. */
export interface ImageSizeReader {
  of(image: string, owner: ImageOwner): Promise<number | null>;
}

export async function toRelease(db: Db, sizes: ImageSizeReader, row: ReleaseRow): Promise<Release> {
  const [release] = await toReleases(db, sizes, row.fleet_id, [row]);
  if (!release) throw new Error('toReleases returns one release per row');
  return release;
}

/**
 * The API view of releases of one fleet, in the order given: three queries whatever their number (fleet, services,
 * creators), then the image sizes, each read once however many releases share an image.
 */
async function toReleases(db: Db, sizes: ImageSizeReader, fleetId: number, rows: ReleaseRow[]): Promise<Release[]> {
  if (rows.length === 0) return [];
  const fleet = await db
    .selectFrom('fleets')
    .select(['slug', 'uuid', 'device_type'])
    .where('id', '=', fleetId)
    .executeTakeFirstOrThrow();
  const ids = rows.map((r) => r.id);
  const services = await db
    .selectFrom('release_services')
    .selectAll()
    .where('release_id', 'in', ids)
    .orderBy('id')
    .execute();
  const creatorIds = [...new Set(rows.map((r) => r.created_by).filter((id): id is number => id !== null))];
  const creators =
    creatorIds.length === 0
      ? []
      : await db.selectFrom('users').select(['id', 'username']).where('id', 'in', creatorIds).execute();
  const usernames = new Map(creators.map((u) => [u.id, u.username]));
  const owner: ImageOwner = { slug: fleet.slug, uuid: fleet.uuid, platform: platformOfDeviceType(fleet.device_type) };
  const imageSizes = new Map<string, number | null>();
  for (const image of new Set(services.map((s) => s.image).filter((i): i is string => !!i)))
    imageSizes.set(image, await sizes.of(image, owner));
  return rows.map((row) => {
    const creator = row.created_by === null ? undefined : usernames.get(row.created_by);
    return {
      id: row.id,
      fleet: fleet.slug,
      commit: row.commit,
      version: row.version,
      status: row.status,
      isFinal: row.is_final === 1,
      composition: JSON.parse(row.composition_json) as ComposeFile,
      services: services
        .filter((s) => s.release_id === row.id)
        .map((s) => ({
          id: s.id,
          name: s.name,
          image: s.image ?? '',
          imageId: s.id,
          imageSize: s.image ? (imageSizes.get(s.image) ?? null) : null,
        })),
      notes: row.notes,
      createdAt: row.created_at,
      createdBy: row.created_by === null || creator === undefined ? null : { id: row.created_by, username: creator },
    };
  });
}

export async function listReleases(db: Db, sizes: ImageSizeReader, fleetId: number): Promise<Release[]> {
  const rows = await db
    .selectFrom('releases')
    .selectAll()
    .where('fleet_id', '=', fleetId)
    .orderBy('id', 'desc')
    .execute();
  return toReleases(db, sizes, fleetId, rows);
}

export interface CreateReleaseInput {
  commit?: string | undefined;
  version?: string | undefined;
  composition: ComposeFile;
  images: Record<string, string>;
  status: ReleaseStatus;
  isFinal: boolean;
  notes?: string | undefined;
  /** The user creating it (who deployed), shown with the release. */
  createdBy: number;
}

function checkImages(composition: ComposeFile, images: Record<string, string>): void {
  for (const name of Object.keys(images)) {
    if (!Object.hasOwn(composition.services, name))
      throw new FlotillaError('SERVICE_NOT_FOUND', `no service "${name}" in the release`);
  }
}

function requireAllImages(names: string[], images: Map<string, string | null>): void {
  const missing = names.filter((n) => !images.get(n));
  if (missing.length > 0)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `a successful release needs an image for every service; missing: ${missing.join(', ')}`,
    );
}

export async function createRelease(
  db: Db,
  sizes: ImageSizeReader,
  fleetId: number,
  input: CreateReleaseInput,
): Promise<Release> {
  checkImages(input.composition, input.images);
  const names = Object.keys(input.composition.services);
  const images = new Map(names.map((n) => [n, input.images[n] ?? input.composition.services[n]?.image ?? null]));
  if (input.status === 'success') requireAllImages(names, images);
  const commit = input.commit ?? randomBytes(16).toString('hex');
  // One transaction: a release without its services would be a target devices cannot run.
  const row = await db.transaction().execute(async (trx) => {
    // INVARIANT: versions are unique per fleet. The next version is read from the fleet's releases, so creations
    // on one fleet are serialised by locking its row first; without it, concurrent creations on PostgreSQL all read
    // the same latest version.
    await lockFleet(trx, fleetId);
    const clash = await trx
      .selectFrom('releases')
      .select('id')
      .where('fleet_id', '=', fleetId)
      .where('commit', '=', commit)
      .executeTakeFirst();
    if (clash) throw new FlotillaError('CONFLICT', `the fleet already has a release with commit ${commit}`);
    const versions = await trx.selectFrom('releases').select('version').where('fleet_id', '=', fleetId).execute();
    const version = input.version ?? nextVersion(versions.map((v) => v.version));
    if (versions.some((v) => v.version === version))
      throw new FlotillaError('CONFLICT', `the fleet already has a release ${version}`);
    const inserted = await trx
      .insertInto('releases')
      .values({
        fleet_id: fleetId,
        commit,
        version,
        status: input.status,
        is_final: input.isFinal ? 1 : 0,
        composition_json: JSON.stringify(input.composition),
        notes: input.notes ?? null,
        created_at: now(),
        created_by: input.createdBy,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    for (const name of names) {
      await trx
        .insertInto('release_services')
        .values({ release_id: inserted.id, name, image: images.get(name) ?? null })
        .execute();
    }
    if (input.status === 'success') await bumpFleet(trx, fleetId);
    return inserted;
  });
  return toRelease(db, sizes, row);
}

export async function updateRelease(
  db: Db,
  sizes: ImageSizeReader,
  row: ReleaseRow,
  input: {
    status?: ReleaseStatus | undefined;
    images?: Record<string, string> | undefined;
    notes?: string | undefined;
  },
): Promise<Release> {
  const finished = row.status !== 'running';
  if (finished && (input.images !== undefined || (input.status !== undefined && input.status !== row.status))) {
    throw new FlotillaError('RELEASE_IMMUTABLE', `release ${row.commit} is ${row.status} and cannot change`);
  }
  const composition = JSON.parse(row.composition_json) as ComposeFile;
  if (input.images) checkImages(composition, input.images);
  // One transaction: a refused change (a missing image, a release failed meanwhile) leaves no image half-set, and no
  // device sees images of a release whose status did not change with them.
  const updated = await db.transaction().execute(async (trx) => {
    if (input.images) {
      for (const [name, image] of Object.entries(input.images)) {
        await trx
          .updateTable('release_services')
          .set({ image })
          .where('release_id', '=', row.id)
          .where('name', '=', name)
          .execute();
      }
    }
    if (input.status === 'success') {
      const services = await trx
        .selectFrom('release_services')
        .select(['name', 'image'])
        .where('release_id', '=', row.id)
        .execute();
      requireAllImages(
        services.map((s) => s.name),
        new Map(services.map((s) => [s.name, s.image])),
      );
    }
    const patch: { status?: ReleaseStatus; notes?: string } = {};
    if (input.status !== undefined) patch.status = input.status;
    if (input.notes !== undefined) patch.notes = input.notes;
    if (Object.keys(patch).length > 0) {
      // A running release may have been failed meanwhile (release-timeout.ts): only a still running one changes.
      const query = trx.updateTable('releases').set(patch).where('id', '=', row.id);
      const result = await (finished ? query : query.where('status', '=', 'running')).executeTakeFirst();
      if (!finished && Number(result.numUpdatedRows) === 0)
        throw new FlotillaError('RELEASE_IMMUTABLE', `release ${row.commit} is finished and cannot change`);
    }
    // Any change may concern a device pinned to this release, even a running one.
    await bumpFleet(trx, row.fleet_id);
    return trx.selectFrom('releases').selectAll().where('id', '=', row.id).executeTakeFirstOrThrow();
  });
  return toRelease(db, sizes, updated);
}

/** serviceId → name for the fleet's releases, so log lines that carry only a serviceId still show their service. */
export async function serviceNamesOfFleet(db: Db, fleetId: number): Promise<Map<number, string>> {
  const rows = await db
    .selectFrom('release_services')
    .innerJoin('releases', 'releases.id', 'release_services.release_id')
    .select(['release_services.id', 'release_services.name'])
    .where('releases.fleet_id', '=', fleetId)
    .execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}
