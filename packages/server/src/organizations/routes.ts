import { API_PREFIX, addMemberRequestSchema, createOrganizationRequestSchema } from '@flotilla/protocol';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../context.js';
import { requireUser } from '../auth/principal.js';
import { parse } from '../http/parse.js';
import {
  addMember,
  createOrganization,
  listMembers,
  listOrganizations,
  removeMember,
  visibleOrganization,
} from './organizations.js';

const orgParams = z.object({ org: z.string().min(1).max(200) });
const memberParams = z.object({ org: z.string().min(1).max(200), username: z.string().min(1).max(200) });

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

  app.post(`${base}/:org/members`, async (request, reply) => {
    const user = await requireUser(db, request);
    const { org } = parse(orgParams, request.params);
    return reply.status(201).send(await addMember(db, user, org, parse(addMemberRequestSchema, request.body)));
  });

  app.delete(`${base}/:org/members/:username`, async (request, reply) => {
    const user = await requireUser(db, request);
    const { org, username } = parse(memberParams, request.params);
    await removeMember(db, user, org, username);
    return reply.status(204).send();
  });
}
