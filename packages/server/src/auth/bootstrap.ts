import { randomBytes } from 'node:crypto';
import type { Db } from '../db/database.js';
import { now } from '../db/database.js';
import { createApiKey, createUser } from './users.js';

export interface AdminCredentials {
  username: string;
  password: string;
  apiKey: string;
}

/**
 * On a database without users: organization "default", user "admin" as its admin and a server administrator
 * (the only one who can create users at first), and an API key. Returns the
 * secrets (shown once), or undefined when the database already had users.
 */
export async function bootstrapAdmin(
  db: Db,
  password = process.env.FLOTILLA_ADMIN_PASSWORD,
): Promise<AdminCredentials | undefined> {
  const any = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (any) return undefined;
  const adminPassword = password && password.length > 0 ? password : randomBytes(18).toString('base64url');
  const user = await createUser(db, { username: 'admin', password: adminPassword, serverAdmin: true });
  const existing = await db.selectFrom('organizations').select('id').where('handle', '=', 'default').executeTakeFirst();
  const orgId =
    existing?.id ??
    (
      await db
        .insertInto('organizations')
        .values({ name: 'default', handle: 'default', created_at: now() })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  await db.insertInto('memberships').values({ organization_id: orgId, user_id: user.id, role: 'admin' }).execute();
  const key = await createApiKey(db, user.id, { name: 'admin', description: 'created on first start' });
  return { username: 'admin', password: adminPassword, apiKey: key.key };
}
