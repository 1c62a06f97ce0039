/**
 * OS releases for the browser tests, pushed the way a user does it: the real CLI (`flotilla os release push`) sends
 * a real ext4 slot image (made by mkfs.ext4 from a folder holding its /etc/os-release) to the server's registry and
 * records it through the user API. mkfs.ext4 comes with e2fsprogs (scripts/setup.sh).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { OsRelease } from '@flotilla/protocol';
import { run } from '@flotilla/testkit';
import type { DashboardServer } from './dashboard-server.js';
import { runCli } from './real-device.js';

/** Pushes one OS release to the organization (handle; the bootstrap admin's `default` unless told). */
export type OsPusher = (deviceType: string, version: string, organization?: string) => Promise<OsRelease>;

/** Logs the CLI in as the admin (its own config folder) and returns a function that pushes one OS release. */
export async function osReleasePusher(world: DashboardServer): Promise<OsPusher> {
  const configDir = join(world.dir, 'cli-os');
  const login = await runCli(configDir, ['login', '--url', world.url, '--api-key', world.admin.apiKey]);
  if (login.code !== 0) throw new Error(`flotilla login: ${login.stderr}`);
  return async (deviceType, version, organization = 'default') => {
    const root = join(world.dir, `os-root-${deviceType}-${version}`);
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc', 'os-release'), `PRETTY_NAME="Flotilla OS ${version}"\nVERSION_ID=${version}\n`);
    const image = join(world.dir, `os-${deviceType}-${version}.ext4`);
    // The smallest size mkfs.ext4 makes without complaint; what matters here is a real image, not its content.
    await run('mkfs.ext4', ['-q', '-F', '-L', `os-${version}`, '-d', root, image, '2M']);
    const args = ['os', 'release', 'push', deviceType, version, image, '--org', organization, '--json'];
    const pushed = await runCli(configDir, args);
    if (pushed.code !== 0) throw new Error(`flotilla os release push ${deviceType} ${version}: ${pushed.stderr}`);
    return JSON.parse(pushed.stdout) as OsRelease;
  };
}
