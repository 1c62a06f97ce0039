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
import { sql, type Selectable } from 'kysely';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds } from '../auth/principal.js';
import { bumpDevices } from '../db/revisions.js';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
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

/**
 * Takes the OS release's row lock in transaction `trx` (a write to the row, as rollout-lock.ts does) and returns the
 * row, or undefined when it is gone. INVARIANT: every write that points devices at a release, and its deletion, takes
 * this lock first, so a deletion that found the release unused cannot race a write pointing a device at it (the
 * foreign key's `set null` would otherwise drop that device's new target without a word).
 */
export async function lockOsRelease(trx: Db, id: number): Promise<OsReleaseRow | undefined> {
  return trx
    .updateTable('os_releases')
    .set({ version: sql`version` })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst();
}

/**
 * Sets the OS target of the devices (`null`: clears it) and bumps each one's revision, in transaction `trx`, so
 * exactly those devices see a new ETag.
 */
export async function writeDevicesOs(trx: Db, deviceIds: readonly number[], releaseId: number | null): Promise<void> {
  for (let i = 0; i < deviceIds.length; i += 500)
    await trx
      .updateTable('devices')
      .set({ target_os_release_id: releaseId })
      .where('id', 'in', deviceIds.slice(i, i + 500))
      .execute();
  await bumpDevices(trx, deviceIds);
}

/**
 * Deletes the user's organization's OS release `id` (OS_RELEASE_NOT_FOUND when it is another's, as missing), unless
 * a device of the organization targets it or an OS rollout still has a say with it (OS_RELEASE_IN_USE). The image
 * stays in the registry until its garbage collection, which no longer counts it as a root.
 */
export async function deleteOsRelease(db: Db, user: UserPrincipal, id: number): Promise<void> {
  const ids = orgIds(user);
  const notFound = () => new FlotillaError('OS_RELEASE_NOT_FOUND', `no OS release ${id}`);
  if (ids.length === 0) throw notFound();
  await db.transaction().execute(async (trx) => {
    const visible = await trx
      .selectFrom('os_releases')
      .select('id')
      .where('id', '=', id)
      .where('organization_id', 'in', ids)
      .executeTakeFirst();
    const release = visible && (await lockOsRelease(trx, visible.id));
    if (!release) throw notFound();
    // Devices moved to another organization since are not told this release (targetOsOf): they do not hold it.
    const devices = await trx
      .selectFrom('devices')
      .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
      .select('devices.name')
      .where('devices.target_os_release_id', '=', id)
      .where('fleets.organization_id', '=', release.organization_id)
      .orderBy('devices.name')
      .limit(6)
      .execute();
    const rollouts = await trx
      .selectFrom('os_rollouts')
      .innerJoin('fleets', 'fleets.id', 'os_rollouts.fleet_id')
      .select('fleets.slug')
      .where('os_rollouts.os_release_id', '=', id)
      .where('os_rollouts.status', 'in', ['running', 'paused'])
      .execute();
    // A fleet's own target: what a device registered there later would start with.
    const fleets = await trx.selectFrom('fleets').select('slug').where('target_os_release_id', '=', id).execute();
    if (devices.length > 0 || rollouts.length > 0 || fleets.length > 0) {
      const held = [
        ...(devices.length === 0
          ? []
          : [
              `device(s) ${devices
                .slice(0, 5)
                .map((d) => d.name)
                .join(', ')}${devices.length > 5 ? ', …' : ''} target it`,
            ]),
        ...(rollouts.length === 0 ? [] : [`the OS rollout of fleet(s) ${rollouts.map((r) => r.slug).join(', ')}`]),
        ...(fleets.length === 0 ? [] : [`fleet(s) ${fleets.map((f) => f.slug).join(', ')} target it`]),
      ];
      throw new FlotillaError(
        'OS_RELEASE_IN_USE',
        `OS ${release.version} for ${release.device_type} is in use: ${held.join('; ')}. Clear their OS target (flotilla device|fleet os-update --clear) first`,
      );
    }
    await trx.deleteFrom('os_releases').where('id', '=', id).execute();
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

/**
 * The OS releases device `deviceId` may be given, as rows joined to the device and its fleet: its organization's, of
 * its device type. INVARIANT: the one tenancy rule of OS images and OS deltas; both ask through here.
 */
export function osReleasesOfDevice(db: Db, deviceId: number) {
  return db
    .selectFrom('devices')
    .innerJoin('fleets', 'fleets.id', 'devices.fleet_id')
    .innerJoin('os_releases', (join) =>
      join
        .onRef('os_releases.organization_id', '=', 'fleets.organization_id')
        .onRef('os_releases.device_type', '=', 'devices.device_type'),
    )
    .where('devices.id', '=', deviceId);
}

/** Whether the device may download the slot image `sha256`: an OS release of its organization and device type. */
export async function deviceMayDownload(db: Db, deviceId: number, sha256: string): Promise<boolean> {
  const row = await osReleasesOfDevice(db, deviceId)
    .select('os_releases.id')
    .where('os_releases.image_sha256', '=', sha256)
    .executeTakeFirst();
  return row !== undefined;
}
