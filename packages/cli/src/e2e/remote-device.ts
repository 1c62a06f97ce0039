/**
 * The world the remote-access end-to-end tests run in: a real server, a real agent (in-process, managed through
 * the fleet's config.json, its own engine namespace) on the local Docker engine, and the real CLI logged in as the
 * server's admin. Optionally a release deployed with `flotilla deploy` whose service `web` is busybox httpd serving
 * a file of random bytes with a known digest; optionally a second server node over the same PostgreSQL database,
 * which the agent connects to instead of the first.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Device } from '@flotilla/protocol';
import { startAgent } from '@flotilla/agent';
import type { AgentHandle } from '@flotilla/agent';
import type { RunningServer } from '@flotilla/server';
import { startServer } from '@flotilla/server';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import { CLI_MAIN, flotilla, flotillaJson } from '../test-support/cli-runner.js';

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

export interface RemoteDevice {
  /** The node the CLI talks to. */
  server: RunningServer;
  /** The node the agent is connected to: `server`, or the second node. */
  deviceNode: RunningServer;
  /** The admin's CLI config folder. */
  admin: string;
  /** The admin's organization (the device's). */
  org: string;
  uuid: string;
  /** What `web` serves at `/blob.bin` (only with `deploy`). */
  blob: { bytes: number; sha256: string };
  /** A new user logged in with the CLI in its own config folder, a member of the device's organization with `role`
   * (none: of no organization); returns that folder. */
  user(name: string, role?: 'member' | 'observer'): Promise<string>;
  /** Ends the agent and the server(s), removes every container, volume, network and image made, and the folder. */
  close(): Promise<void>;
}

export interface RemoteDeviceOptions {
  /** Deploy the `web` release (busybox httpd on port 80) and wait until it runs. */
  deploy: boolean;
  /** PostgreSQL instead of SQLite. */
  databaseUrl?: string | undefined;
  /** A second server node over `databaseUrl`; the agent connects to it, the CLI to the first. */
  secondNode?: boolean;
}

const BLOB_BYTES = 4 * 1024 * 1024;

export async function startRemoteDevice(name: string, options: RemoteDeviceOptions): Promise<RemoteDevice> {
  const namespace = `${name}${process.pid}x`;
  const fleet = `${name}-${process.pid}`;
  const dir = await tempDir(`flotilla-${name}-`);
  const admin = join(dir.path, 'admin');
  const blob = randomBytes(BLOB_BYTES);
  let server: RunningServer | undefined;
  let second: RunningServer | undefined;
  let agent: AgentHandle | undefined;
  const close = async () => {
    // Each step runs whatever the one before did: a failed stop must not leave containers behind.
    await agent?.stop().catch(() => undefined);
    await second?.close().catch(() => undefined);
    await server?.close().catch(() => undefined);
    await removeEngineObjects(namespace, server ? new URL(server.url).host : undefined);
    await dir.remove();
  };

  try {
    if (options.deploy) await ensureBusyboxImage();
    const database = options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl };
    server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0, ...database });
    if (options.secondNode) {
      if (!options.databaseUrl) throw new Error('a second node needs a shared database (databaseUrl)');
      second = await startServer({ dataDir: join(dir.path, 'server-b'), host: '127.0.0.1', port: 0, ...database });
    }
    const deviceNode = second ?? server;
    const login = await flotilla(admin, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? '']);
    if (login.code !== 0) throw new Error(`admin login failed: ${login.stderr}`);
    const who = await flotillaJson<{ organizations: Array<{ handle: string }> }>(admin, ['whoami']);
    const org = who.organizations[0]?.handle ?? 'default';

    await flotillaJson(admin, ['fleet', 'create', name, '--slug', fleet]);
    const configPath = join(dir.path, 'config.json');
    await flotillaJson(admin, ['os', 'config', fleet, '-o', configPath, '--poll-interval', '10000']);
    if (second) {
      const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
      await writeFile(configPath, JSON.stringify({ ...config, apiEndpoint: second.url }), { mode: 0o600 });
    }
    agent = await startAgent({
      configPath,
      dataDir: join(dir.path, 'agent'),
      namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      apiPort: 0,
      logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
    });
    const started = agent;
    const adminKey = server.admin?.apiKey ?? '';
    const device = await waitFor(
      'the device to register and connect',
      async () => {
        const [found] = await api<{ items: Device[] }>(deviceNode.url, adminKey, `/devices?fleet=${fleet}`).then(
          (r) => r.items,
        );
        // Streams need the device's WebSocket, which the agent opens after registering.
        return found && started.state().remoteActionsConnected ? found : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );

    if (options.deploy) {
      const project = join(dir.path, 'project');
      await writeProject(project, blob);
      const deployed = await flotillaJson<{ release: { commit: string } }>(admin, ['deploy', fleet, project]);
      started.triggerUpdate();
      await waitFor(
        'the device to run and report the release',
        async () => {
          const info = await api<Device>(server?.url ?? '', adminKey, `/devices/${device.uuid}`);
          return info.runningRelease === deployed.release.commit && info.services.web?.status === 'Running';
        },
        { timeoutMs: 120_000, intervalMs: 250 },
      );
    }

    const users = join(dir.path, 'users');
    const base = server.url;
    return {
      server,
      deviceNode,
      admin,
      org,
      uuid: device.uuid,
      blob: { bytes: blob.length, sha256: sha256(blob) },
      async user(username, role) {
        // Set up over HTTP (the CLI's own user and organization commands have their tests); logged in with the CLI.
        const config = join(users, username);
        const password = `${username}-password-${randomBytes(4).toString('hex')}`;
        await api(base, adminKey, '/users', { method: 'POST', body: { username, password } });
        if (role) {
          await api(base, adminKey, `/organizations/${org}/invitations`, { method: 'POST', body: { username, role } });
          const { token } = await api<{ token: string }>(base, '', '/auth/login', {
            method: 'POST',
            body: { username, password },
          });
          const { items } = await api<{ items: Array<{ id: number }> }>(base, token, '/invitations');
          await api(base, token, `/invitations/${items[0]?.id}/accept`, { method: 'POST', body: {} });
        }
        await flotillaJson(config, ['login', '--url', base, '--username', username, '--password', password]);
        return config;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** One JSON request to the user API; throws with the answer unless it succeeded. */
async function api<T>(
  baseUrl: string,
  key: string,
  path: string,
  options: { method?: string; body?: unknown } = {},
): Promise<T> {
  const response = await fetch(`${baseUrl}/api/v1${path}`, {
    method: options.method ?? 'GET',
    headers: {
      ...(key ? { authorization: `Bearer ${key}` } : {}),
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${options.method ?? 'GET'} ${path}: ${response.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** `web`: busybox httpd on port 80 serving /www, where blob.bin holds `blob` (copied from the build context). */
async function writeProject(root: string, blob: Buffer): Promise<void> {
  await mkdir(join(root, 'web'), { recursive: true });
  await writeFile(join(root, 'web', 'blob.bin'), blob);
  await writeFile(
    join(root, 'web', 'Dockerfile'),
    [
      `FROM ${BUSYBOX_IMAGE}`,
      'COPY blob.bin /www/blob.bin',
      'RUN echo "<h1>web</h1>" > /www/index.html',
      'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]',
      '',
    ].join('\n'),
  );
  await writeFile(join(root, 'docker-compose.yml'), 'services:\n  web:\n    build: web\n');
}

/** Every engine object the agent made under `namespace`, and the images built for or pulled from `registryHost`. */
async function removeEngineObjects(namespace: string, registryHost: string | undefined): Promise<void> {
  const label = `label=io.flotilla.namespace=${namespace}`;
  const list = async (args: string[]) =>
    (await run('docker', args).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
  const containers = await list(['ps', '-aq', '--filter', label]);
  if (containers.length > 0) await run('docker', ['rm', '-f', '-v', ...containers]).catch(() => undefined);
  const volumes = await list(['volume', 'ls', '-q', '--filter', label]);
  if (volumes.length > 0) await run('docker', ['volume', 'rm', '-f', ...volumes]).catch(() => undefined);
  const networks = await list(['network', 'ls', '-q', '--filter', label]);
  if (networks.length > 0) await run('docker', ['network', 'rm', ...networks]).catch(() => undefined);
  if (registryHost) {
    const images = (await list(['images', '--format', '{{.Repository}}@{{.ID}}'])).filter((l) =>
      l.startsWith(`${registryHost}/`),
    );
    const ids = [...new Set(images.map((l) => l.split('@')[1] ?? ''))].filter(Boolean);
    if (ids.length > 0) await run('docker', ['rmi', '-f', ...ids]).catch(() => undefined);
  }
}

/** A long-running CLI command (`flotilla tunnel …`) as a child process with its own config folder. */
export interface CliProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the first match of `pattern` on stdout; rejects after `timeoutMs` or when the process ends. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** How it ended. */
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnCli(configDir: string, args: readonly string[]): CliProcess {
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ended = false;
  void exit.then(() => {
    ended = true;
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exit,
    waitForStdout: (pattern, timeoutMs = 10_000) =>
      waitFor(
        `flotilla ${args.join(' ')} to print ${pattern}`,
        () => {
          const match = out.match(pattern);
          if (match) return match;
          if (ended) throw new Error(`it exited; stdout ${JSON.stringify(out)}, stderr ${JSON.stringify(err)}`);
          return undefined;
        },
        { timeoutMs, intervalMs: 20 },
      ),
  };
}

/**
 * Resolves with `promise`, or rejects saying what did not happen within `ms`.
 * INVARIANT: the timer is cleared either way; a pending one would keep the test process alive after its tests.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${typeof what === 'string' ? what : what()} did not happen within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends a `flotilla tunnel` with SIGTERM, as Ctrl-C or a service manager would, and checks it exits 0. */
export async function stopTunnel(tunnel: { cli: CliProcess }): Promise<void> {
  tunnel.cli.child.kill('SIGTERM');
  const ended = await within(tunnel.cli.exit, 5_000, 'the tunnel exiting on SIGTERM').finally(() =>
    tunnel.cli.child.kill('SIGKILL'),
  );
  assert.deepEqual(ended, { code: 0, signal: null }, `SIGTERM ends the tunnel cleanly; stderr ${tunnel.cli.stderr()}`);
}

/** `flotilla tunnel <device> <mapping>` running, and the local port it listens on. */
export async function startTunnel(
  configDir: string,
  device: string,
  mapping: string,
): Promise<{ cli: CliProcess; port: number }> {
  const cli = spawnCli(configDir, ['tunnel', device, mapping]);
  try {
    const [, port] = await cli.waitForStdout(/^tunnel 127\.0\.0\.1:(\d+) /m);
    return { cli, port: Number(port) };
  } catch (error) {
    cli.child.kill('SIGKILL');
    throw error;
  }
}

/** Streams a server node relays now (shells, tunnel connections, public-URL requests, waiting for a device), as
 * its `/metrics` reports them to an operator. */
export async function openStreams(server: RunningServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const lines = text.split('\n').filter((line) => line.startsWith('flotilla_remote_streams{'));
  if (lines.length === 0) throw new Error('no flotilla_remote_streams in /metrics');
  return lines.reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}
