import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { requireOrgAdmin } from '../auth/principal.js';
import type { UserPrincipal } from '../auth/principal.js';
import { getUser } from '../auth/users.js';
import { serve } from '../http/serve.js';
import { makeConfigJson } from './config-json.js';
import { createFleet, deleteFleet, listFleets, toFleet, updateFleet, visibleFleet } from './fleets.js';
import { createProvisioningKey, listProvisioningKeys, revokeProvisioningKey } from './provisioning-keys.js';

/** Fleets, their provisioning keys and config.json; their releases are in releases/, variables in variables/. */
export function registerFleetRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const fleetOf = (user: UserPrincipal, params: { slug: string }) => visibleFleet(db, user, params.slug);

  const creatorOf = async (user: UserPrincipal) => ({
    userId: user.userId,
    username: (await getUser(db, user.userId)).username,
  });

  serve(app, db, R.listFleets, async ({ user }) => ({ items: await listFleets(db, user) }));

  serve(app, db, R.createFleet, async ({ user, body }) => createFleet(db, user, body));

  serve(app, db, R.getFleet, async ({ user, params }) => toFleet(db, await fleetOf(user, params)));

  serve(app, db, R.updateFleet, async ({ user, params, body }) => {
    const fleet = await fleetOf(user, params);
    const updated = await updateFleet(db, user, fleet.slug, body);
    // A new pin moves the target release of every device of the fleet that is not pinned itself.
    if (body.pinnedRelease !== undefined) ctx.deviceChanges.fleetChanged(fleet.id);
    return updated;
  });

  serve(app, db, R.deleteFleet, async ({ user, params }) => {
    const fleet = await fleetOf(user, params);
    const devices = await db.selectFrom('devices').select('id').where('fleet_id', '=', fleet.id).execute();
    await deleteFleet(db, user, fleet.slug);
    ctx.deviceChanges.fleetRemoved(fleet.id);
    // Its devices' shells, tunnels and public-URL connections end at once, on every node.
    for (const device of devices) app.remoteAccess.endDeviceStreams(device.id, null, 'device-deleted');
  });

  // ---------------------------------------------------------------------------------------- provisioning keys
  serve(app, db, R.listProvisioningKeys, async ({ user, params }) => ({
    items: await listProvisioningKeys(db, (await fleetOf(user, params)).id),
  }));

  // Only organization admins make provisioning keys: a key works only while its creator administers the
  // organization, so it cannot outlive the membership of whoever made it.
  serve(app, db, R.createProvisioningKey, async ({ user, params, body }) => {
    const fleet = await fleetOf(user, params);
    requireOrgAdmin(user, fleet.organization_id);
    return createProvisioningKey(db, fleet.id, await creatorOf(user), body);
  });

  serve(app, db, R.revokeProvisioningKey, async ({ user, params }) =>
    revokeProvisioningKey(db, (await fleetOf(user, params)).id, params.id),
  );

  serve(app, db, R.fleetConfigJson, async ({ user, params, body }) => {
    const fleet = await fleetOf(user, params);
    requireOrgAdmin(user, fleet.organization_id);
    return makeConfigJson(db, fleet, await creatorOf(user), ctx.publicUrl, body, ctx.rootCa);
  });
}
