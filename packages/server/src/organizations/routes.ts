import {
  API_PREFIX,
  INVITATION_ROUTES,
  createOrganizationRequestSchema,
  inviteRequestSchema,
} from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requireUser } from '../auth/principal.js';
import { parse } from '../http/parse.js';
import { acceptInvitation, declineInvitation, inviteUser, listInvitations } from './invitations.js';
import {
  createOrganization,
  listMembers,
  listOrganizations,
  removeMember,
  visibleOrganization,
} from './organizations.js';

const orgParams = z.object({ org: z.string().min(1).max(200) });
const memberParams = z.object({ org: z.string().min(1).max(200), username: z.string().min(1).max(200) });
const idParams = z.object({
  id: z
    .string()
    .regex(/^\d{1,12}$/)
    .transform(Number),
});

export function registerOrganizationRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  const base = `${API_PREFIX}/organizations`;

  app.get(base, async (request) => ({ items: await listOrganizations(db, await requireUser(db, request)) }));

  app.post(base, async (request, reply) => {
    const user = await requireUser(db, request);
    return reply
      .status(201)
      .send(await createOrganization(db, user, parse(createOrganizationRequestSchema, request.body)));
  });

  app.get(`${base}/:org`, async (request) => {
    const user = await requireUser(db, request);
    const org = await visibleOrganization(db, user, parse(orgParams, request.params).org);
    return (await listOrganizations(db, user)).find((o) => o.id === org.id);
  });

  app.get(`${base}/:org/members`, async (request) => {
    const user = await requireUser(db, request);
    return { items: await listMembers(db, user, parse(orgParams, request.params).org) };
  });

  app.delete(`${base}/:org/members/:username`, async (request, reply) => {
    const user = await requireUser(db, request);
    const { org, username } = parse(memberParams, request.params);
    const removed = await removeMember(db, user, org, username);
    app.userStreams.userChanged(removed);
    return reply.status(204).send();
  });

  // Nobody joins an organization without accepting: admins invite, the invitee accepts or declines.
  app.post(INVITATION_ROUTES.invite.path, async (request, reply) => {
    const user = await requireUser(db, request);
    const { org } = parse(orgParams, request.params);
    await inviteUser(db, user, org, parse(inviteRequestSchema, request.body));
    return reply.status(202).send({});
  });

  app.get(INVITATION_ROUTES.list.path, async (request) => ({
    items: await listInvitations(db, await requireUser(db, request)),
  }));

  app.post(INVITATION_ROUTES.accept.path, async (request) => {
    const user = await requireUser(db, request);
    const organization = await acceptInvitation(db, user, parse(idParams, request.params).id);
    app.userStreams.userChanged(user.userId);
    return { organization };
  });

  app.post(INVITATION_ROUTES.decline.path, async (request, reply) => {
    const user = await requireUser(db, request);
    await declineInvitation(db, user, parse(idParams, request.params).id);
    return reply.status(204).send();
  });
}
