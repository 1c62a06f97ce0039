import { FlotillaError } from '@flotilla/protocol';
import type { Organization, Role, User } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import type { UserPrincipal } from '../auth/principal.js';
import { orgIds, requireOrgAdmin } from '../auth/principal.js';

export function toUser(row: { id: number; username: string; email: string | null; created_at: string }): User {
  return { id: row.id, username: row.username, email: row.email, createdAt: row.created_at };
}

export async function listOrganizations(db: Db, user: UserPrincipal): Promise<Organization[]> {
  const ids = orgIds(user);
  if (ids.length === 0) return [];
  const rows = await db.selectFrom('organizations').selectAll().where('id', 'in', ids).orderBy('id').execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    handle: r.handle,
    role: user.roles.get(r.id),
    createdAt: r.created_at,
  }));
}

export function handleFromName(name: string): string {
  const handle = name
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[-_]+|-+$/g, '')
    .slice(0, 100);
  return handle || 'org';
}

export async function createOrganization(
  db: Db,
  user: UserPrincipal | null,
  input: { name: string; handle?: string | undefined },
): Promise<Organization> {
  const handle = input.handle ?? handleFromName(input.name);
  const taken = await db.selectFrom('organizations').select('id').where('handle', '=', handle).executeTakeFirst();
  if (taken) throw new FlotillaError('SLUG_TAKEN', `organization handle "${handle}" is taken`);
  const created_at = now();
  const row = await db
    .insertInto('organizations')
    .values({ name: input.name, handle, created_at })
    .returning('id')
    .executeTakeFirstOrThrow();
  if (user) {
    await db
      .insertInto('memberships')
      .values({ organization_id: row.id, user_id: user.userId, role: 'admin' })
      .execute();
    user.roles.set(row.id, 'admin');
  }
  return { id: row.id, name: input.name, handle, role: user ? 'admin' : undefined, createdAt: created_at };
}

/** An organization the user belongs to, by handle (or numeric id); 404 for any other. */
export async function visibleOrganization(
  db: Db,
  user: UserPrincipal,
  ref: string,
): Promise<{ id: number; handle: string; name: string }> {
  const ids = orgIds(user);
  const byId = /^\d{1,15}$/.test(ref) ? Number(ref) : -1;
  const row =
    ids.length === 0
      ? undefined
      : await db
          .selectFrom('organizations')
          .select(['id', 'handle', 'name'])
          .where('id', 'in', ids)
          .where((eb) => eb.or([eb('handle', '=', ref), eb('id', '=', byId)]))
          .executeTakeFirst();
  if (!row) throw new FlotillaError('ORGANIZATION_NOT_FOUND', `no organization "${ref}"`);
  return row;
}

export async function listMembers(db: Db, user: UserPrincipal, ref: string): Promise<{ user: User; role: Role }[]> {
  const org = await visibleOrganization(db, user, ref);
  const rows = await db
    .selectFrom('memberships')
    .innerJoin('users', 'users.id', 'memberships.user_id')
    .select(['users.id', 'users.username', 'users.email', 'users.created_at', 'memberships.role'])
    .where('memberships.organization_id', '=', org.id)
    .orderBy('users.id')
    .execute();
  return rows.map((r) => ({ user: toUser(r), role: r.role }));
}

/**
 * Removes member `userId` (admins only); a user who is not a member gets the same 404 as no user at all. Decided
 * under the organization's lock like `setMemberRole`, so two admins removing each other cannot leave none. The caller
 * tells the open streams (`userStreams.userChanged`), so the removal is in force at once.
 */
export async function removeMember(db: Db, user: UserPrincipal, ref: string, userId: number): Promise<void> {
  const org = await visibleOrganization(db, user, ref);
  requireOrgAdmin(user, org.id);
  await db.transaction().execute(async (tx) => {
    const roles = await lockedRoles(tx, org.id);
    if (roles.get(user.userId) !== 'admin')
      throw new FlotillaError('FORBIDDEN', 'only organization admins may do this');
    const current = roles.get(userId);
    if (current === undefined)
      throw new FlotillaError('USER_NOT_FOUND', `no member with user id ${userId} in this organization`);
    const admins = [...roles.values()].filter((r) => r === 'admin').length;
    if (current === 'admin' && admins === 1)
      throw new FlotillaError('LAST_ADMIN', 'cannot remove the last admin of an organization');
    await tx.deleteFrom('memberships').where('organization_id', '=', org.id).where('user_id', '=', userId).execute();
  });
  if (userId === user.userId) user.roles.delete(org.id);
}

/**
 * Sets the role of member `userId` (admins only). A user who is not a member gets the same 404 as no user at all.
 * INVARIANT: an organization keeps at least one admin: lowering its last admin is LAST_ADMIN. The caller's own role
 * and the admins are read again under the organization's lock, so two admins demoting each other at once cannot
 * leave none, and an admin demoted a moment ago cannot act on a role read before. The caller tells the open streams
 * (`userStreams.userChanged`) once this returns, so the new role is in force at once.
 */
export async function setMemberRole(
  db: Db,
  user: UserPrincipal,
  ref: string,
  userId: number,
  role: Role,
): Promise<{ user: User; role: Role }> {
  const org = await visibleOrganization(db, user, ref);
  requireOrgAdmin(user, org.id);
  return db.transaction().execute(async (tx) => {
    const roles = await lockedRoles(tx, org.id);
    if (roles.get(user.userId) !== 'admin')
      throw new FlotillaError('FORBIDDEN', 'only organization admins may do this');
    const target = await tx.selectFrom('users').selectAll().where('id', '=', userId).executeTakeFirst();
    const current = roles.get(userId);
    if (!target || current === undefined)
      throw new FlotillaError('USER_NOT_FOUND', `no member with user id ${userId} in this organization`);
    const admins = [...roles.values()].filter((r) => r === 'admin').length;
    if (current === 'admin' && role !== 'admin' && admins === 1)
      throw new FlotillaError('LAST_ADMIN', 'the last admin of an organization stays admin');
    if (current !== role)
      await tx
        .updateTable('memberships')
        .set({ role })
        .where('organization_id', '=', org.id)
        .where('user_id', '=', userId)
        .execute();
    if (userId === user.userId) user.roles.set(org.id, role);
    return { user: toUser(target), role };
  });
}

/**
 * The organization's members (user id → role), read after taking the organization's row lock for the rest of the
 * transaction: a no-op update works on both dialects (a PostgreSQL row lock; SQLite's write lock), so a concurrent
 * change of roles waits for this transaction, then reads again (each statement reads what is committed).
 */
async function lockedRoles(tx: Db, organizationId: number): Promise<Map<number, Role>> {
  await tx
    .updateTable('organizations')
    .set((eb) => ({ handle: eb.ref('handle') }))
    .where('id', '=', organizationId)
    .execute();
  const rows = await tx
    .selectFrom('memberships')
    .select(['user_id', 'role'])
    .where('organization_id', '=', organizationId)
    .execute();
  return new Map(rows.map((r) => [r.user_id, r.role]));
}
