import { USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import type { UserPrincipal } from '../auth/principal.js';
import { getUser } from '../auth/users.js';
import { visibleFleet } from '../fleets/fleets.js';
import { serve } from '../http/serve.js';
import { deleteRolloutPolicy, listRolloutPolicies, putRolloutPolicy } from './rollout-policies.js';
import { actOnOsRollout, createOsRollout } from './os-rollouts.js';
import type { RolloutAction } from './rollout-actions.js';
import { OS_ROLLOUTS, RELEASE_ROLLOUTS } from './rollout-kind.js';
import { latestRollout, rolloutById } from './rollout-lock.js';
import { toOsRollout, toRollout } from './rollout-view.js';
import { actOnRollout, createRollout } from './rollouts.js';

/**
 * A fleet's staged rollouts. Reads for every member; changes for admins and members (serve() hands a write route
 * the caller without the organizations where they only observe, so `visibleFleet` finds no fleet of theirs there).
 */
export function registerRolloutRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const fleetOf = (user: UserPrincipal, params: { slug: string }) => visibleFleet(db, user, params.slug);

  serve(app, db, R.createRollout, async ({ user, params, body }) => {
    const fleet = await fleetOf(user, params);
    const id = await createRollout(db, fleet, body, user.userId);
    // A superseded rollout may have had a say over the devices' targets.
    ctx.deviceChanges.fleetChanged(fleet.id);
    return toRollout(db, await rolloutById(db, RELEASE_ROLLOUTS, id));
  });

  serve(app, db, R.getRollout, async ({ user, params }) =>
    toRollout(db, await latestRollout(db, RELEASE_ROLLOUTS, (await fleetOf(user, params)).id)),
  );

  const act =
    (action: RolloutAction) =>
    async ({ user, params }: { user: UserPrincipal; params: { slug: string } }) => {
      const fleet = await fleetOf(user, params);
      const { username } = await getUser(db, user.userId);
      if (await actOnRollout(db, fleet.id, action, username)) ctx.deviceChanges.fleetChanged(fleet.id);
      return toRollout(db, await latestRollout(db, RELEASE_ROLLOUTS, fleet.id));
    };
  serve(app, db, R.pauseRollout, act('pause'));
  serve(app, db, R.resumeRollout, act('resume'));
  serve(app, db, R.abortRollout, act('abort'));

  // OS rollouts: batches' OS targets are written as they open; the engine (ctx.rollouts) evaluates them too.
  serve(app, db, R.createOsRollout, async ({ user, params, body }) => {
    const fleet = await fleetOf(user, params);
    const { id, told } = await createOsRollout(db, fleet, body, user.userId);
    if (told.length > 0) ctx.deviceChanges.changed(told);
    // The fleet's view names its OS rollout (`osRollout`): its followers (the dashboard) ask for it again.
    ctx.deviceChanges.fleetChanged(fleet.id);
    const rollout = await rolloutById(db, OS_ROLLOUTS, id);
    // Every device of the fleet will be given it, batch by batch: their deltas are computed meanwhile.
    void ctx.osDeltas?.precompute(rollout.os_release_id, { fleetId: fleet.id });
    return toOsRollout(db, rollout);
  });
  serve(app, db, R.getOsRollout, async ({ user, params }) =>
    toOsRollout(db, await latestRollout(db, OS_ROLLOUTS, (await fleetOf(user, params)).id)),
  );
  const actOs =
    (action: RolloutAction) =>
    async ({ user, params }: { user: UserPrincipal; params: { slug: string } }) => {
      const fleet = await fleetOf(user, params);
      const { username } = await getUser(db, user.userId);
      const changed = await actOnOsRollout(db, fleet.id, action, username);
      if (changed.length > 0) ctx.deviceChanges.changed(changed);
      ctx.deviceChanges.fleetChanged(fleet.id);
      return toOsRollout(db, await latestRollout(db, OS_ROLLOUTS, fleet.id));
    };
  serve(app, db, R.pauseOsRollout, actOs('pause'));
  serve(app, db, R.resumeOsRollout, actOs('resume'));
  serve(app, db, R.abortOsRollout, actOs('abort'));

  serve(app, db, R.listRolloutPolicies, async ({ user, params }) => ({
    items: await listRolloutPolicies(db, (await fleetOf(user, params)).id),
  }));
  serve(app, db, R.putRolloutPolicy, async ({ user, params, body }) =>
    putRolloutPolicy(db, (await fleetOf(user, params)).id, params.name, body),
  );
  serve(app, db, R.deleteRolloutPolicy, async ({ user, params }) =>
    deleteRolloutPolicy(db, (await fleetOf(user, params)).id, params.name),
  );
}
