import { FlotillaError, USER_ROUTES as R } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../context.js';
import { serve } from '../http/serve.js';
import { acceptInvitation, declineInvitation, inviteUser, listInvitations } from './invitations.js';
import {
  createOrganization,
  listMembers,
  listOrganizations,
  removeMember,
  setMemberRole,
  visibleOrganization,
} from './organizations.js';

export function registerOrganizationRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;

  serve(app, db, R.listOrganizations, async ({ user }) => ({ items: await listOrganizations(db, user) }));

  serve(app, db, R.createOrganization, async ({ user, body }) => createOrganization(db, user, body));

  serve(app, db, R.getOrganization, async ({ user, params }) => {
    const org = await visibleOrganization(db, user, params.org);
    const found = (await listOrganizations(db, user)).find((o) => o.id === org.id);
    if (!found) throw new FlotillaError('ORGANIZATION_NOT_FOUND', `no organization ${params.org}`);
    return found;
  });

  serve(app, db, R.listMembers, async ({ user, params }) => ({ items: await listMembers(db, user, params.org) }));

  serve(app, db, R.setMemberRole, async ({ user, params, body }) => {
    const member = await setMemberRole(db, user, params.org, params.userId, body.role);
    // In force at once: their streams are judged again with the new role (a shell or tunnel ends for an observer).
    app.userStreams.userChanged(member.user.id);
    return member;
  });

  serve(app, db, R.removeMember, async ({ user, params }) => {
    await removeMember(db, user, params.org, params.userId);
    app.userStreams.userChanged(params.userId);
  });

  // Nobody joins an organization without accepting: admins invite, the invitee accepts or declines.
  serve(app, db, R.invite, async ({ user, params, body }) => {
    await inviteUser(db, user, params.org, body);
    return {};
  });

  serve(app, db, R.listInvitations, async ({ user }) => ({ items: await listInvitations(db, user) }));

  serve(app, db, R.acceptInvitation, async ({ user, params }) => {
    const organization = await acceptInvitation(db, user, params.id);
    app.userStreams.userChanged(user.userId);
    return { organization };
  });

  serve(app, db, R.declineInvitation, async ({ user, params }) => {
    await declineInvitation(db, user, params.id);
  });
}
