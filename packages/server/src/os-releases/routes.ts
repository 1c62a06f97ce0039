import { DEVICE_ROUTES, FlotillaError, USER_ROUTES as R, deviceUuidSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { authenticateDevice, presentedKeyHash } from '../device-api/device-auth.js';
import { visibleDevice } from '../devices/devices.js';
import { visibleFleet } from '../fleets/fleets.js';
import { parse } from '../http/parse.js';
import { sendRanged } from '../http/ranged-file.js';
import { serve } from '../http/serve.js';
import { visibleOrganization } from '../organizations/organizations.js';
import type { RegistryStorage } from '../registry/storage.js';
import { getUser } from '../auth/users.js';
import {
  createOsRelease,
  deleteOsRelease,
  deviceMayDownload,
  findOsRelease,
  listOsReleases,
  toOsRelease,
} from './os-releases.js';
import { clearDeviceOs, clearFleetOs, setDeviceOs, setFleetOs } from './os-targets.js';

const imageParams = z.object({ uuid: deviceUuidSchema, hash: z.string().regex(/^[0-9a-f]{64}$/) });

/** OS releases (user API) and the devices' download of a slot image (device key, Range). */
export function registerOsReleaseRoutes(app: FastifyInstance, ctx: AppContext, storage: RegistryStorage): void {
  const { db, deviceChanges } = ctx;
  const registryHost = () => new URL(ctx.publicUrl).host;

  serve(app, db, R.createOsRelease, async ({ user, params, body }) => {
    const org = await visibleOrganization(db, user, params.org);
    return toOsRelease(db, await createOsRelease(db, storage, user, org.id, body), registryHost());
  });
  serve(app, db, R.listOsReleases, async ({ user, query }) => {
    const organizationId =
      query.organization === undefined ? undefined : (await visibleOrganization(db, user, query.organization)).id;
    const rows = await listOsReleases(db, user, { deviceType: query.deviceType, organizationId });
    return { items: await Promise.all(rows.map((row) => toOsRelease(db, row, registryHost()))) };
  });
  serve(app, db, R.setDeviceOs, async ({ user, params, body }) => {
    const device = await visibleDevice(db, user, params.uuid);
    const fleet = await db
      .selectFrom('fleets')
      .select('organization_id')
      .where('id', '=', device.fleet_id)
      .executeTakeFirstOrThrow();
    const release = await findOsRelease(db, fleet.organization_id, device.device_type, body.version);
    await setDeviceOs(db, device.id, release.id);
    deviceChanges.changed([device.id]);
    void ctx.osDeltas?.precompute(release.id, { deviceId: device.id });
    return { deviceType: release.device_type, version: release.version, devices: [device.uuid] };
  });
  serve(app, db, R.setFleetOs, async ({ user, params, body }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    const release = await findOsRelease(db, fleet.organization_id, fleet.device_type, body.version);
    const devices = await setFleetOs(db, fleet.id, release);
    deviceChanges.fleetChanged(fleet.id);
    void ctx.osDeltas?.precompute(release.id, { fleetId: fleet.id });
    return { deviceType: release.device_type, version: release.version, devices };
  });
  serve(app, db, R.clearDeviceOs, async ({ user, params }) => {
    const device = await visibleDevice(db, user, params.uuid);
    const cleared = await clearDeviceOs(db, device.id);
    if (cleared) deviceChanges.changed([device.id]);
    return { devices: cleared ? [device.uuid] : [] };
  });
  serve(app, db, R.clearFleetOs, async ({ user, params }) => {
    const fleet = await visibleFleet(db, user, params.slug);
    const { username } = await getUser(db, user.userId);
    const devices = await clearFleetOs(db, fleet.id, username);
    deviceChanges.fleetChanged(fleet.id);
    return { devices };
  });
  serve(app, db, R.deleteOsRelease, async ({ user, params }) => {
    await deleteOsRelease(db, user, params.id);
  });

  app.get(DEVICE_ROUTES.osImage.path, async (request, reply) => {
    const params = parse(imageParams, request.params);
    const device = await authenticateDevice(ctx.deviceLookup, params.uuid, presentedKeyHash(request));
    const size = (await deviceMayDownload(db, device.id, params.hash))
      ? await storage.blobSize(params.hash)
      : undefined;
    if (size === undefined)
      throw new FlotillaError('OS_RELEASE_NOT_FOUND', 'no OS release of this device has this image');
    return sendRanged(request, reply, {
      size,
      etag: `"sha256:${params.hash}"`,
      read: (range) => storage.readBlob(params.hash, range),
    });
  });
}
