import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import { z } from 'zod';
import { readCaFile } from './trust.js';

export const credentialsSchema = z.object({
  url: z.url(),
  token: z.string().min(1),
  /** PEM CA of a server with its own CA (`login --ca`); FLOTILLA_CA=<file> overrides it (credentials/trust.ts). */
  ca: z.string().includes('-----BEGIN CERTIFICATE-----').optional(),
});
export type Credentials = z.infer<typeof credentialsSchema>;

/** `$FLOTILLA_CONFIG_DIR/credentials.json`, else `~/.config/flotilla/credentials.json` (XDG_CONFIG_HOME honoured). */
export function credentialsPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.FLOTILLA_CONFIG_DIR ?? join(env.XDG_CONFIG_HOME ?? join(homedir(), '.config'), 'flotilla');
  return join(dir, 'credentials.json');
}

export async function readCredentials(env: NodeJS.ProcessEnv = process.env): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(credentialsPath(env), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = credentialsSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new FlotillaError(
      'NOT_LOGGED_IN',
      `the credentials file ${credentialsPath(env)} is damaged; run \`flotilla login\` again`,
    );
  return parsed.data;
}

export async function requireCredentials(env: NodeJS.ProcessEnv = process.env): Promise<Credentials> {
  const credentials = await readCredentials(env);
  if (!credentials)
    throw new FlotillaError('NOT_LOGGED_IN', 'not logged in; run `flotilla login --url <server> --api-key <key>`');
  return env.FLOTILLA_CA ? { ...credentials, ca: await readCaFile(env.FLOTILLA_CA) } : credentials;
}

/**
 * WARNING: the file holds a secret. It is created 0600 under a temp name and renamed, in a folder made 0700, so it is
 * never readable by others, not even for a moment, and never half-written.
 */
export async function writeCredentials(
  credentials: Credentials,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = credentialsPath(env);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  // mkdir's mode applies only to folders it creates: one made earlier (or by hand) may be open to others.
  await chmod(dirname(file), 0o700);
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600);
  await rename(temp, file);
  return file;
}

export async function removeCredentials(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const file = credentialsPath(env);
  try {
    await rm(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
