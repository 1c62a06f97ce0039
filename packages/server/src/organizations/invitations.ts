import { FlotillaError } from '@flotilla/protocol';
import type { Invitation, Organization, Role } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { UserPrincipal } from '../auth/principal.js';
import { requireOrgAdmin } from '../auth/principal.js';
import { visibleOrganization } from './organizations.js';

/** How long an invitation waits for its answer. */
export const INVITATION_TTL_MS = 14 * 24 * 3600 * 1000;

/**
 * An organization admin invites `username`. Nothing tells the inviter whether that user exists: an invitation is
 * recorded only for an existing user, tied to their id (a user created later under the name never sees it).
 * Inviting again replaces the pending invitation (e.g. with another role).
 */
export async function inviteUser(
  db: Db,
  user: UserPrincipal,
  ref: string,
  input: { username: string; role: Role },
): Promise<void> {
  const org = await visibleOrganization(db, user, ref);
  requireOrgAdmin(user, org.id);
  const invitee = await db.selectFrom('users').select('id').where('username', '=', input.username).executeTakeFirst();
  if (!invitee) return;
  const at = Date.now();
  await db.transaction().execute(async (tx) => {
    await tx
      .deleteFrom('invitations')
      .where('organization_id', '=', org.id)
      .where('user_id', '=', invitee.id)
      .execute();
    await tx
      .insertInto('invitations')
      .values({
        organization_id: org.id,
        user_id: invitee.id,
        role: input.role,
        invited_by: user.userId,
        created_at: new Date(at).toISOString(),
        expires_at: new Date(at + INVITATION_TTL_MS).toISOString(),
      })
      .execute();
  });
}

function pending(db: Db, user: UserPrincipal) {
  return db
    .selectFrom('invitations')
    .innerJoin('organizations', 'organizations.id', 'invitations.organization_id')
    .leftJoin('users as inviter', 'inviter.id', 'invitations.invited_by')
    .select([
      'invitations.id',
      'invitations.role',
      'invitations.created_at',
      'invitations.expires_at',
      'organizations.id as orgId',
      'organizations.handle',
      'organizations.name',
      'organizations.created_at as orgCreatedAt',
      'inviter.username as inviter',
    ])
    .where('invitations.user_id', '=', user.userId)
    .where('invitations.expires_at', '>', now());
}

/** The caller's pending invitations, oldest first. */
export async function listInvitations(db: Db, user: UserPrincipal): Promise<Invitation[]> {
  const rows = await pending(db, user).orderBy('invitations.id').execute();
  return rows.map((r) => ({
    id: r.id,
    organization: { id: r.orgId, handle: r.handle, name: r.name },
    role: r.role,
    invitedBy: r.inviter,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  }));
}

/** Accepts one of the caller's own invitations: the membership is made (or its role set) and the invitation spent. */
export async function acceptInvitation(db: Db, user: UserPrincipal, id: number): Promise<Organization> {
  const row = await pending(db, user).where('invitations.id', '=', id).executeTakeFirst();
  if (!row) throw new FlotillaError('INVITATION_NOT_FOUND', `no pending invitation ${id} for you`);
  await db.transaction().execute(async (tx) => {
    const spent = await tx.deleteFrom('invitations').where('id', '=', id).executeTakeFirst();
    // A concurrent accept or decline already spent it.
    if (Number(spent.numDeletedRows) === 0)
      throw new FlotillaError('INVITATION_NOT_FOUND', `no pending invitation ${id} for you`);
    const member = await tx
      .selectFrom('memberships')
      .select('role')
      .where('organization_id', '=', row.orgId)
      .where('user_id', '=', user.userId)
      .executeTakeFirst();
    if (member?.role === 'admin' && row.role !== 'admin') {
      const admins = await tx
        .selectFrom('memberships')
        .select('user_id')
        .where('organization_id', '=', row.orgId)
        .where('role', '=', 'admin')
        .execute();
      if (admins.length === 1)
        throw new FlotillaError('LAST_ADMIN', 'the last admin of an organization cannot step down');
    }
    if (member)
      await tx
        .updateTable('memberships')
        .set({ role: row.role })
        .where('organization_id', '=', row.orgId)
        .where('user_id', '=', user.userId)
        .execute();
    else
      await tx
        .insertInto('memberships')
        .values({ organization_id: row.orgId, user_id: user.userId, role: row.role })
        .execute();
  });
  user.roles.set(row.orgId, row.role);
  return { id: row.orgId, name: row.name, handle: row.handle, role: row.role, createdAt: row.orgCreatedAt };
}

export async function declineInvitation(db: Db, user: UserPrincipal, id: number): Promise<void> {
  const result = await db
    .deleteFrom('invitations')
    .where('id', '=', id)
    .where('user_id', '=', user.userId)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0)
    throw new FlotillaError('INVITATION_NOT_FOUND', `no pending invitation ${id} for you`);
}
