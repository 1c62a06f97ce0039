import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The database dialects every server test runs against. SQLite always; PostgreSQL when
 * FLOTILLA_TEST_POSTGRES_URL names a server (CI starts one). In CI a missing PostgreSQL is an error, not a skip,
 * so the PostgreSQL half of the suite can never silently stop running.
 */
export type TestDatabase =
  | { dialect: 'sqlite'; label: string; create: () => Promise<{ url: undefined; drop: () => Promise<void> }> }
  | { dialect: 'postgres'; label: string; create: () => Promise<{ url: string; drop: () => Promise<void> }> };

export function testDatabases(): TestDatabase[] {
  const out: TestDatabase[] = [
    { dialect: 'sqlite', label: 'sqlite', create: async () => ({ url: undefined, drop: async () => undefined }) },
  ];
  const adminUrl = process.env.FLOTILLA_TEST_POSTGRES_URL;
  if (adminUrl) {
    out.push({ dialect: 'postgres', label: 'postgres', create: () => createPostgresDatabase(adminUrl) });
  } else if (process.env.CI === 'true') {
    throw new Error(
      'CI=true but FLOTILLA_TEST_POSTGRES_URL is not set: the PostgreSQL half of the suite would not run',
    );
  }
  return out;
}

/** A fresh, empty PostgreSQL database on the server at `adminUrl`, and a function that drops it. */
export async function createPostgresDatabase(adminUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `flotilla_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
