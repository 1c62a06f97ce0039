import { readFile } from 'node:fs/promises';
import {
  DEVICE_ROUTES,
  FlotillaError,
  OS_RELEASE_CONFIG_MEDIA_TYPE,
  OS_SLOT_IMAGE_MEDIA_TYPE,
  osReleaseImageConfigSchema,
  osRepository,
  path,
  type CreateOsReleaseRequest,
  type OsRelease,
  type TargetOs,
} from '@flotilla/protocol';
import type { Selectable } from 'kysely';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds } from '../auth/principal.js';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { bumpDevice, bumpFleet } from '../db/revisions.js';
import type { Database } from '../db/schema.js';
import { imageManifestSchema } from '../registry/manifest-schema.js';
import type { RegistryStorage } from '../registry/storage.js';

/**
 * Host OS releases. Tenancy (decided, not inherited by accident): an OS release belongs to one organization, by id;
 * its admins and members record it (the write routes hand observers' organizations nowhere, serve.ts), every member
 * lists it, and only devices of that organization's fleets whose device type is the release's are told it or may
 * download it. Another organization's releases are answered as missing, never as forbidden.
 */
type OsReleaseRow = Selectable<Database['os_releases']>;

const hexOf = (digest: string) => digest.slice('sha256:'.length);

/**
 * Records the OS release image the CLI pushed: its manifest must be in the organization's repository for the
 * device type, name one config blob of OS_RELEASE_CONFIG_MEDIA_TYPE that agrees with the request and one layer of
 * OS_SLOT_IMAGE_MEDIA_TYPE, both in that repository with the sizes the manifest says. OS_RELEASE_INVALID otherwise.
 */
export async function createOsRelease(
  db: Db,
  storage: RegistryStorage,
  user: UserPrincipal,
  organizationId: number,
  body: CreateOsReleaseRequest,
): Promise<OsReleaseRow> {
  const repository = osRepository(organizationId, body.deviceType);
  const invalid = (why: string) =>
    new FlotillaError('OS_RELEASE_INVALID', `${repository}@${body.manifestDigest}: ${why}`);
  const manifestHex = hexOf(body.manifestDigest);
  if ((await storage.manifestMediaType(repository, manifestHex)) === undefined)
    throw invalid('no such manifest was pushed there');
  let manifest: ReturnType<typeof imageManifestSchema.safeParse>;
  try {
    manifest = imageManifestSchema.safeParse(JSON.parse(await readFile(storage.blobPath(manifestHex), 'utf8')));
  } catch {
    throw invalid('the manifest cannot be read');
  }
  if (!manifest.success) throw invalid('not an image manifest');
  const { config, layers } = manifest.data;
  const layer = layers[0];
  if (layers.length !== 1 || layer?.mediaType !== OS_SLOT_IMAGE_MEDIA_TYPE)
    throw invalid(`it must have exactly one layer of ${OS_SLOT_IMAGE_MEDIA_TYPE}`);
  if (config.mediaType !== OS_RELEASE_CONFIG_MEDIA_TYPE)
    throw invalid(`its config must be ${OS_RELEASE_CONFIG_MEDIA_TYPE}`);
  const layerHex = hexOf(layer.digest);
  const size = await storage.blobSize(layerHex);
  if (!(await storage.isLinked(repository, layerHex)) || size === undefined || size !== layer.size || size === 0)
    throw invalid('its slot image blob is missing or not the size the manifest says');
  let configOk = false;
  try {
    const parsed = osReleaseImageConfigSchema.safeParse(
      JSON.parse(await readFile(storage.blobPath(hexOf(config.digest)), 'utf8')),
    );
    configOk = parsed.success && parsed.data.deviceType === body.deviceType && parsed.data.version === body.version;
  } catch {
    configOk = false;
  }
  if (!configOk || !(await storage.isLinked(repository, hexOf(config.digest))))
    throw invalid(`its config does not name device type ${body.deviceType} and version ${body.version}`);
  const exists = () =>
    new FlotillaError('OS_RELEASE_EXISTS', `${body.deviceType} already has OS ${body.version}; give another version`);
  const existing = () =>
    db
      .selectFrom('os_releases')
      .select('id')
      .where('organization_id', '=', organizationId)
      .where('device_type', '=', body.deviceType)
      .where('version', '=', body.version)
      .executeTakeFirst();
  if (await existing()) throw exists();
  try {
    return await db
      .insertInto('os_releases')
      .values({
        organization_id: organizationId,
        device_type: body.deviceType,
        version: body.version,
        manifest_digest: body.manifestDigest,
        image_sha256: layerHex,
        image_size: size,
        created_at: now(),
        created_by: user.userId,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (error) {
    // Two pushes of the same version at once: the unique constraint lets one in; the other is told so, not a 500.
    if (await existing()) throw exists();
    throw error;
  }
}

/** The user's organizations' OS releases, newest first. */
export async function listOsReleases(
  db: Db,
  user: UserPrincipal,
  filter: { deviceType?: string | undefined; organizationId?: number | undefined },
): Promise<OsReleaseRow[]> {
  const ids = orgIds(user).filter((id) => filter.organizationId === undefined || id === filter.organizationId);
  if (ids.length === 0) return [];
  let q = db.selectFrom('os_releases').selectAll().where('organization_id', 'in', ids);
  if (filter.deviceType !== undefined) q = q.where('device_type', '=', filter.deviceType);
  return q.orderBy('id', 'desc').execute();
}

export async function toOsRelease(db: Db, row: OsReleaseRow, registryHost: string): Promise<OsRelease> {
  const org = await db
    .selectFrom('organizations')
    .select('handle')
    .where('id', '=', row.organization_id)
    .executeTakeFirstOrThrow();
  const author =
    row.created_by === null
      ? undefined
      : await db.selectFrom('users').select('username').where('id', '=', row.created_by).executeTakeFirst();
  return {
    id: row.id,
    organization: org.handle,
    deviceType: row.device_type,
    version: row.version,
    image: `${registryHost}/${osRepository(row.organization_id, row.device_type)}@${row.manifest_digest}`,
    manifestDigest: row.manifest_digest,
    sha256: row.image_sha256,
    size: Number(row.image_size),
    createdAt: row.created_at,
    createdBy: author?.username ?? null,
  };
}

/** The organization's OS release of `version` for `deviceType`; OS_RELEASE_NOT_FOUND when there is none. */
export async function findOsRelease(
  db: Db,
  organizationId: number,
  deviceType: string,
  version: string,
): Promise<OsReleaseRow> {
  const row = await db
    .selectFrom('os_releases')
    .selectAll()
    .where('organization_id', '=', organizationId)
    .where('device_type', '=', deviceType)
    .where('version', '=', version)
    .executeTakeFirst();
  if (!row) throw new FlotillaError('OS_RELEASE_NOT_FOUND', `no OS ${version} for device type ${deviceType}`);
  return row;
}

/** Points the device at the release; bumps its revision in the same transaction (its target state changes). */
export async function setDeviceOs(db: Db, deviceId: number, releaseId: number): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await trx.updateTable('devices').set({ target_os_release_id: releaseId }).where('id', '=', deviceId).execute();
    await bumpDevice(trx, deviceId);
  });
}

/**
 * Points every device of the fleet of the release's device type at it; one fleet revision bump tells them all (a
 * device whose target did not change keeps its ETag). Returns the UUIDs of the devices told.
 */
export async function setFleetOs(db: Db, fleetId: number, release: OsReleaseRow): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    const devices = await trx
      .selectFrom('devices')
      .select(['id', 'uuid'])
      .where('fleet_id', '=', fleetId)
      .where('device_type', '=', release.device_type)
      .orderBy('id')
      .execute();
    if (devices.length > 0)
      await trx
        .updateTable('devices')
        .set({ target_os_release_id: release.id })
        .where(
          'id',
          'in',
          devices.map((d) => d.id),
        )
        .execute();
    await bumpFleet(trx, fleetId);
    return devices.map((d) => d.uuid);
  });
}

/**
 * The `os` of the device's target state, or undefined. Only a release of the device's own organization and device
 * type counts: one set before the device moved to another organization is not sent.
 */
export async function targetOsOf(db: Db, deviceId: number): Promise<TargetOs | undefined> {
  const row = await db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .innerJoin('os_releases', 'os_releases.id', 'devices.target_os_release_id')
    .select(['devices.uuid', 'os_releases.version', 'os_releases.image_sha256', 'os_releases.image_size'])
    .where('devices.id', '=', deviceId)
    .whereRef('os_releases.organization_id', '=', 'fleets.organization_id')
    .whereRef('os_releases.device_type', '=', 'devices.device_type')
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    version: row.version,
    url: path(DEVICE_ROUTES.osImage.path, { uuid: row.uuid, hash: row.image_sha256 }),
    sha256: row.image_sha256,
    size: Number(row.image_size),
  };
}

/** Whether the device may download the slot image `sha256`: an OS release of its organization and device type. */
export async function deviceMayDownload(db: Db, deviceId: number, sha256: string): Promise<boolean> {
  const row = await db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .innerJoin('os_releases', (join) =>
      join
        .onRef('os_releases.organization_id', '=', 'fleets.organization_id')
        .onRef('os_releases.device_type', '=', 'devices.device_type'),
    )
    .select('os_releases.id')
    .where('devices.id', '=', deviceId)
    .where('os_releases.image_sha256', '=', sha256)
    .executeTakeFirst();
  return row !== undefined;
}
