/**
 * A real device for the browser tests: the agent (in-process, managed through a config.json from `flotilla os
 * config`, in its own engine namespace) on the local Docker engine, and the real CLI binary logged in as the admin,
 * which deploys busybox-based projects with `flotilla deploy`. Everything it makes on the engine is removed by close().
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AgentHandle, startAgent } from '@flotilla/agent';
import { LABELS, USER_ROUTES } from '@flotilla/protocol';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, waitFor } from '@flotilla/testkit';
import type { DashboardServer } from './dashboard-server.js';

/** The built CLI entry point (packages/cli/dist/main.js): the tests run the real binary. */
const CLI_MAIN = fileURLToPath(new URL('./main.js', import.meta.resolve('@flotilla/cli')));

export interface DeployedRelease {
  id: number;
  commit: string;
  version: string;
}

export interface RealDevice {
  uuid: string;
  agent: AgentHandle;
  /** `flotilla <args> --json` as the admin; throws with its stderr unless it exits 0. */
  cli<T>(args: string[]): Promise<T>;
  /**
   * `flotilla deploy` of a one-service project: `web`, busybox printing `web <marker> started, GREETING=<value>`
   * when it starts, then `tick <n>` every 2 s. Resolves once the release is created (not yet running).
   */
  deploy(marker: string): Promise<DeployedRelease>;
  /** The running container of `service` in this device's namespace: id, start time, environment. */
  container(service: string): Promise<{ id: string; startedAt: string; env: string[] } | undefined>;
  close(): Promise<void>;
}

/** Provisions an agent into `fleet` (which must exist) and waits until the device is registered and connected. */
export async function startRealDevice(world: DashboardServer, fleet: string, name: string): Promise<RealDevice> {
  await ensureBusyboxImage();
  const namespace = `${name}${process.pid}x`;
  const configDir = join(world.dir, 'cli');
  const cli = async <T>(args: string[]): Promise<T> => {
    const { code, stdout, stderr } = await runCli(configDir, [...args, '--json']);
    if (code !== 0) throw new Error(`flotilla ${args.join(' ')} exited ${code}: ${stderr}`);
    return JSON.parse(stdout) as T;
  };
  let agent: AgentHandle | undefined;
  const close = async () => {
    await agent?.stop().catch(() => undefined);
    await removeEngineObjects(namespace, new URL(world.url).host);
  };
  try {
    const login = await runCli(configDir, ['login', '--url', world.url, '--api-key', world.admin.apiKey]);
    if (login.code !== 0) throw new Error(`flotilla login: ${login.stderr}`);
    const configPath = join(world.dir, 'config.json');
    await cli(['os', 'config', fleet, '-o', configPath, '--poll-interval', '10000']);
    const started = await startAgent({
      configPath,
      dataDir: join(world.dir, 'agent'),
      namespace,
      pollIntervalMs: 1_000,
      reportIntervalMs: 100,
      apiPort: 0,
      logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
    });
    agent = started;
    const device = await waitFor(
      'the device to register and connect',
      async () => {
        const [found] = (await world.api.call(USER_ROUTES.listDevices, { query: { fleet } })).items;
        return found && started.state().remoteActionsConnected ? found : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const project = join(world.dir, 'project');
    return {
      uuid: device.uuid,
      agent: started,
      cli,
      async deploy(marker) {
        await writeProject(project, marker);
        const { release } = await cli<{ release: DeployedRelease }>(['deploy', fleet, project]);
        return release;
      },
      container: (service) => runningContainer(namespace, service),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The real CLI binary with its own config folder; resolves with its exit code and output (never rejects). */
export function runCli(configDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
      },
    ).stdin?.end();
  });
}

async function writeProject(root: string, marker: string): Promise<void> {
  await mkdir(join(root, 'web'), { recursive: true });
  // `sleep & wait` so the TERM trap runs at once: a stop or restart does not wait out the engine's grace period.
  const script = [
    "trap 'exit 0' TERM",
    `echo "web $(cat /release) started, GREETING=\${GREETING:-none}"`,
    'i=0',
    'while true; do i=$((i+1)); echo "tick $i"; sleep 2 & wait; done',
  ].join('; ');
  await writeFile(
    join(root, 'web', 'Dockerfile'),
    [`FROM ${BUSYBOX_IMAGE}`, `RUN echo ${marker} > /release`, `CMD ${JSON.stringify(['sh', '-c', script])}`, ''].join(
      '\n',
    ),
  );
  await writeFile(join(root, 'docker-compose.yml'), 'services:\n  web:\n    build: web\n');
}

async function runningContainer(namespace: string, service: string) {
  const ids = (
    await run('docker', [
      'ps',
      '-q',
      '--filter',
      `label=io.flotilla.namespace=${namespace}`,
      '--filter',
      `label=${LABELS.serviceName}=${service}`,
    ])
  ).stdout
    .split('\n')
    .filter(Boolean);
  if (ids.length !== 1) return undefined;
  const [inspected] = JSON.parse((await run('docker', ['inspect', ids[0] ?? ''])).stdout) as Array<{
    Id: string;
    State: { StartedAt: string };
    Config: { Env: string[] };
  }>;
  return inspected && { id: inspected.Id, startedAt: inspected.State.StartedAt, env: inspected.Config.Env };
}

/** Every engine object the agent made under `namespace`, and the images built for or pulled from `registryHost`. */
async function removeEngineObjects(namespace: string, registryHost: string): Promise<void> {
  const label = `label=io.flotilla.namespace=${namespace}`;
  const list = async (args: string[]) =>
    (await run('docker', args).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
  const containers = await list(['ps', '-aq', '--filter', label]);
  if (containers.length > 0) await run('docker', ['rm', '-f', '-v', ...containers]).catch(() => undefined);
  const volumes = await list(['volume', 'ls', '-q', '--filter', label]);
  if (volumes.length > 0) await run('docker', ['volume', 'rm', '-f', ...volumes]).catch(() => undefined);
  const networks = await list(['network', 'ls', '-q', '--filter', label]);
  if (networks.length > 0) await run('docker', ['network', 'rm', ...networks]).catch(() => undefined);
  const images = (await list(['images', '--format', '{{.Repository}}@{{.ID}}'])).filter((l) =>
    l.startsWith(`${registryHost}/`),
  );
  const ids = [...new Set(images.map((l) => l.split('@')[1] ?? ''))].filter(Boolean);
  if (ids.length > 0) await run('docker', ['rmi', '-f', ...ids]).catch(() => undefined);
}
