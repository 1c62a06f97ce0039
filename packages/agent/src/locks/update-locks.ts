import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Each service gets a host folder `<servicesDir>/<namespace><appId>/<service>/`, bind-mounted at /tmp/balena and
 * /tmp/resin in its container. A service holds an update lock by creating `updates.lock` there, and a hand-over
 * target signals readiness with `handover-complete`.
 */
export const LOCK_FILE = 'updates.lock';
export const HANDOVER_FILE = 'handover-complete';

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
  /** App ids where any service holds updates.lock (a lock blocks the whole app, as on balenaOS). */
  lockedApps: Set<number>;
  /** `<appId>/<serviceName>` with handover-complete present. */
  handoverComplete: Set<string>;
}

export async function scanLocks(servicesDir: string, namespace: string): Promise<LockScan> {
  const scan: LockScan = { lockedApps: new Set(), handoverComplete: new Set() };
  for (const appDir of await readdir(servicesDir).catch(() => [] as string[])) {
    if (!appDir.startsWith(namespace)) continue;
    const rest = appDir.slice(namespace.length);
    if (!/^\d+$/.test(rest)) continue; // another namespace whose prefix starts with ours
    const appId = Number(rest);
    for (const service of await readdir(join(servicesDir, appDir)).catch(() => [] as string[])) {
      const dir = join(servicesDir, appDir, service);
      if (await exists(join(dir, LOCK_FILE))) scan.lockedApps.add(appId);
      if (await exists(join(dir, HANDOVER_FILE))) scan.handoverComplete.add(`${appId}/${service}`);
    }
  }
  return scan;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
