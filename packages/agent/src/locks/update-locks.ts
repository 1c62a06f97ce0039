import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { PRIVATE_DIR_MODE } from '../store/private-files.js';
import { join } from 'node:path';

/**
 * Each service gets a host folder `<servicesDir>/<namespace><appId>/<service>/`, bind-mounted at /tmp/balena and
 * /tmp/resin in its container. A service holds an update lock by creating `updates.lock` there, and a hand-over
 * target signals readiness with `handover-complete`.
 *
 * The agent takes the same lock itself before it kills or stops a service (balena does too): it creates
 * `updates.lock` exclusively (O_EXCL, as `lockfile` or `set -C` in a service do) in the folder of every service of
 * the app, so a service that tries to take the lock after the agent decided to kill finds it held, instead of
 * taking it between the agent's scan and the kill. The agent's lock files hold AGENT_LOCK_MARK, which tells them
 * apart from a service's (also after an agent restart: a lock left by a crash is the agent's to release).
 */
export const LOCK_FILE = 'updates.lock';
export const HANDOVER_FILE = 'handover-complete';
export const AGENT_LOCK_MARK = 'flotilla-agent\n';

export function serviceLockDir(servicesDir: string, namespace: string, appId: number, serviceName: string): string {
  return join(servicesDir, `${namespace}${appId}`, serviceName);
}

/** The folder of the data folder that holds the services' lock folders. */
export const SERVICES_DIR = 'services';

/**
 * Whether `relativePath` (from the data folder, `/`-separated) is a service's lock folder, `services/<app>/<service>`:
 * its contents are written by the service, not the agent.
 */
export function isServiceLockDir(relativePath: string): boolean {
  const parts = relativePath.split('/');
  return parts.length === 3 && parts[0] === SERVICES_DIR;
}

export interface LockScan {
  /** App ids where a service holds updates.lock (a lock blocks the whole app, as on balenaOS). */
  lockedApps: Set<number>;
  /** `<appId>/<serviceName>` whose updates.lock the agent holds. */
  agentLocks: Set<string>;
  /** `<appId>/<serviceName>` with handover-complete present. */
  handoverComplete: Set<string>;
}

export async function scanLocks(servicesDir: string, namespace: string): Promise<LockScan> {
  const scan: LockScan = { lockedApps: new Set(), agentLocks: new Set(), handoverComplete: new Set() };
  for (const appDir of await readdir(servicesDir).catch(() => [] as string[])) {
    if (!appDir.startsWith(namespace)) continue;
    const rest = appDir.slice(namespace.length);
    if (!/^\d+$/.test(rest)) continue; // another namespace whose prefix starts with ours
    const appId = Number(rest);
    for (const service of await readdir(join(servicesDir, appDir)).catch(() => [] as string[])) {
      const dir = join(servicesDir, appDir, service);
      const lock = await lockHolder(join(dir, LOCK_FILE));
      if (lock === 'service') scan.lockedApps.add(appId);
      else if (lock === 'agent') scan.agentLocks.add(`${appId}/${service}`);
      if (await exists(join(dir, HANDOVER_FILE))) scan.handoverComplete.add(`${appId}/${service}`);
    }
  }
  return scan;
}

/**
 * Takes the update lock in every folder of `dirs` (service folders of one app), all or none: false, with nothing
 * left behind, when a service holds it in one of them. A folder whose lock the agent already holds is kept.
 */
export async function takeLocks(dirs: readonly string[]): Promise<boolean> {
  const taken: string[] = [];
  for (const dir of dirs) {
    const file = join(dir, LOCK_FILE);
    await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    try {
      await writeFile(file, AGENT_LOCK_MARK, { flag: 'wx' });
      taken.push(file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if ((await lockHolder(file)) === 'agent') continue;
      await Promise.all(taken.map((f) => rm(f, { force: true })));
      return false;
    }
  }
  return true;
}

/** Releases the agent's update locks in `dirs`; a service's own lock files are left alone. */
export async function releaseLocks(dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) {
    const file = join(dir, LOCK_FILE);
    if ((await lockHolder(file)) === 'agent') await rm(file, { force: true });
  }
}

async function lockHolder(file: string): Promise<'agent' | 'service' | undefined> {
  let content: string;
  try {
    content = await readFile(file, 'utf8');
  } catch (error) {
    // Present but unreadable (a folder named updates.lock, `mkdir` as a lock; permissions): a service's lock.
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : 'service';
  }
  return content === AGENT_LOCK_MARK ? 'agent' : 'service';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
