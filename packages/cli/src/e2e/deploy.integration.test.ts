/**
 * Issue 5 acceptance: server + CLI + agent + registry + the local Docker engine, end to end.
 * server (SQLite in a temp dir) → `flotilla os config` → agent provisions from that config.json → `flotilla deploy`
 * builds and pushes a two-service project → the agent pulls from our registry with its device key and runs it →
 * fleet env change restarts only the affected service → a second release converges → pinning goes back.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Device, Release } from '@flotilla/protocol';
import { LABELS } from '@flotilla/protocol';
import { startAgent } from '@flotilla/agent';
import type { AgentHandle } from '@flotilla/agent';
import type { RunningServer } from '@flotilla/server';
import { startServer } from '@flotilla/server';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

interface RunningContainer {
  id: string;
  service: string;
  /** Release id from the container name `<ns><service>_<releaseId>_<hash>`: the agent renames a container whose
   * image did not change between releases instead of recreating it, and labels cannot change, so names are the
   * source of truth. */
  releaseId: number;
  env: string[];
  volumes: string[];
}

let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
let config: string;
let agent: AgentHandle | undefined;
const namespace = `e2e${process.pid}x`;
const fleet = `e2e-${process.pid}`;

async function containers(): Promise<RunningContainer[]> {
  const ids = (await run('docker', ['ps', '-q', '--filter', `label=io.flotilla.namespace=${namespace}`])).stdout
    .split('\n')
    .filter(Boolean);
  if (ids.length === 0) return [];
  const inspected = JSON.parse((await run('docker', ['inspect', ...ids])).stdout) as Array<{
    Id: string;
    Name: string;
    State: { Running: boolean };
    Config: { Labels: Record<string, string>; Env: string[] };
    Mounts: Array<{ Type: string; Name?: string; Destination: string }>;
  }>;
  return inspected
    .filter((c) => c.State.Running)
    .map((c) => ({
      id: c.Id,
      service: c.Config.Labels[LABELS.serviceName] ?? '',
      releaseId: Number(/_(\d+)_[0-9a-f]+$/.exec(c.Name)?.[1] ?? -1),
      env: c.Config.Env,
      volumes: c.Mounts.filter((m) => m.Type === 'volume').map((m) => `${m.Name}:${m.Destination}`),
    }))
    .sort((a, b) => a.service.localeCompare(b.service));
}

/** Waits until exactly web and worker run the given release, then returns them. */
async function converged(releaseId: number, description: string): Promise<RunningContainer[]> {
  return waitFor(
    description,
    async () => {
      const list = await containers();
      return list.length === 2 &&
        list.every((c) => c.releaseId === releaseId) &&
        list.map((c) => c.service).join(',') === 'web,worker'
        ? list
        : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 250 },
  );
}

async function cleanup(): Promise<void> {
  const label = `label=io.flotilla.namespace=${namespace}`;
  const ids = (await run('docker', ['ps', '-aq', '--filter', label])).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['rm', '-f', '-v', ...ids]).catch(() => undefined);
  const volumes = (await run('docker', ['volume', 'ls', '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
  if (volumes.length > 0) await run('docker', ['volume', 'rm', '-f', ...volumes]).catch(() => undefined);
  const networks = (await run('docker', ['network', 'ls', '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
  if (networks.length > 0) await run('docker', ['network', 'rm', ...networks]).catch(() => undefined);
  if (server) {
    const host = new URL(server.url).host;
    const images = (await run('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}@{{.ID}}'])).stdout
      .split('\n')
      .filter((l) => l.startsWith(`${host}/`));
    const imageIds = [...new Set(images.map((l) => l.split('@')[1] ?? ''))].filter(Boolean);
    if (imageIds.length > 0) await run('docker', ['rmi', '-f', ...imageIds]).catch(() => undefined);
  }
}

async function writeProject(root: string, marker: string): Promise<void> {
  await mkdir(join(root, 'web'), { recursive: true });
  await mkdir(join(root, 'worker'), { recursive: true });
  await writeFile(
    join(root, 'web', 'Dockerfile'),
    `FROM ${BUSYBOX_IMAGE}\nRUN echo ${marker} > /marker\nCMD ["sh","-c","trap 'exit 0' TERM; cat /marker > /data/marker; sleep 3600 & wait"]\n`,
  );
  await writeFile(
    join(root, 'worker', 'Dockerfile'),
    `FROM ${BUSYBOX_IMAGE}\nCMD ["sh","-c","trap 'exit 0' TERM; sleep 3600 & wait"]\n`,
  );
  await writeFile(
    join(root, 'docker-compose.yml'),
    [
      'services:',
      '  web:',
      '    build: web',
      '    volumes: ["data:/data"]',
      '  worker:',
      '    build: worker',
      '    depends_on: [web]',
      '    volumes: ["data:/shared"]',
      'volumes:',
      '  data: {}',
      '',
    ].join('\n'),
  );
}

before(async () => {
  await ensureBusyboxImage();
  dir = await tempDir('flotilla-e2e-');
  config = join(dir.path, 'cli');
  server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0 });
  const login = await flotilla(config, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? '']);
  assert.equal(login.code, 0, login.stderr);
});

after(async () => {
  await agent?.stop();
  await server?.close();
  await cleanup();
  await dir?.remove();
});

test('deploy to a real agent: run, env change, second release, pin back', async () => {
  await flotillaJson(config, ['fleet', 'create', 'E2E', '--slug', fleet]);
  const configJson = join(dir.path, 'config.json');
  await flotillaJson(config, ['os', 'config', fleet, '-o', configJson, '--poll-interval', '10000']);

  agent = await startAgent({
    configPath: configJson,
    dataDir: join(dir.path, 'agent'),
    namespace,
    pollIntervalMs: 300,
    reportIntervalMs: 100,
    apiPort: 0,
    logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
  });
  const device = await waitFor(
    'the device to register',
    async () => (await flotillaJson<Device[]>(config, ['device', 'list', '--fleet', fleet]))[0],
    { timeoutMs: 30_000 },
  );

  // Release 1.
  const project = join(dir.path, 'project');
  await writeProject(project, 'first');
  const first = await flotillaJson<{ release: { id: number; commit: string } }>(config, ['deploy', fleet, project]);
  agent.triggerUpdate();
  let running = await converged(first.release.id, 'release 1 running');
  const volume = running.find((c) => c.service === 'web')?.volumes[0] ?? '';
  assert.match(volume, /_data:\/data$/, 'web has the named volume');
  assert.ok(
    running.find((c) => c.service === 'worker')?.volumes[0]?.startsWith(volume.split(':')[0] ?? '-'),
    'worker shares the same volume',
  );
  await waitFor(
    'the device to report release 1',
    async () =>
      (await flotillaJson<Device>(config, ['device', 'info', device.uuid])).runningRelease === first.release.commit,
    { timeoutMs: 60_000 },
  );
  const reported = await flotillaJson<Device>(config, ['device', 'info', device.uuid]);
  assert.deepEqual(Object.keys(reported.services).sort(), ['web', 'worker']);

  // Device actions travel to the agent: restarting worker restarts that container only.
  const startedAt = async (id: string) =>
    (await run('docker', ['inspect', '--format', '{{.State.StartedAt}}', id])).stdout.trim();
  const workerId = running.find((c) => c.service === 'worker')?.id ?? '';
  const webId = running.find((c) => c.service === 'web')?.id ?? '';
  const [workerStart, webStart] = [await startedAt(workerId), await startedAt(webId)];
  const action = await flotillaJson<{ id: number; action: string; status: string }>(config, [
    'device',
    'restart',
    device.uuid,
    '--service',
    'worker',
  ]);
  assert.equal(action.action, 'restart-service');
  await waitFor('worker restarted by the action', async () => (await startedAt(workerId)) !== workerStart, {
    timeoutMs: 30_000,
  });
  assert.equal(await startedAt(webId), webStart, 'web not restarted');
  assert.equal((await flotilla(config, ['device', 'identify', device.uuid])).code, 0);

  // A fleet env var for web only: web is recreated with it, worker is left alone.
  const before1 = running;
  await flotillaJson(config, ['env', 'add', 'COLOUR', 'blue', '--fleet', fleet, '--service', 'web']);
  agent.triggerUpdate();
  running = await waitFor(
    'web to restart with COLOUR',
    async () => {
      const list = await containers();
      return list.find((c) => c.service === 'web')?.env.includes('COLOUR=blue') && list.length === 2 ? list : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
  assert.notEqual(
    running.find((c) => c.service === 'web')?.id,
    before1.find((c) => c.service === 'web')?.id,
    'web recreated',
  );
  assert.equal(
    running.find((c) => c.service === 'worker')?.id,
    before1.find((c) => c.service === 'worker')?.id,
    'worker untouched',
  );
  assert.ok(!running.find((c) => c.service === 'worker')?.env.includes('COLOUR=blue'));

  // Release 2.
  await writeProject(project, 'second');
  const second = await flotillaJson<{ release: { id: number; commit: string } }>(config, ['deploy', fleet, project]);
  agent.triggerUpdate();
  running = await converged(second.release.id, 'release 2 running');
  const marker = async () =>
    (
      await run('docker', ['exec', running.find((c) => c.service === 'worker')?.id ?? '', 'cat', '/shared/marker'])
    ).stdout.trim();
  assert.equal(
    await waitFor('release 2 marker in the volume', async () => ((await marker()) === 'second' ? 'second' : undefined)),
    'second',
  );
  await waitFor(
    'the device to report release 2',
    async () =>
      (await flotillaJson<Device>(config, ['device', 'info', device.uuid])).runningRelease === second.release.commit,
    { timeoutMs: 60_000 },
  );

  // Pin the device back to release 1.
  await flotillaJson(config, ['device', 'pin', device.uuid, String(first.release.id)]);
  agent.triggerUpdate();
  running = await converged(first.release.id, 'back on release 1');
  assert.equal(
    await waitFor('release 1 marker in the volume', async () => ((await marker()) === 'first' ? 'first' : undefined)),
    'first',
  );
  await waitFor(
    'the device to report release 1 again',
    async () =>
      (await flotillaJson<Device>(config, ['device', 'info', device.uuid])).runningRelease === first.release.commit,
    { timeoutMs: 60_000 },
  );
  const releases = await flotillaJson<Release[]>(config, ['release', 'list', fleet]);
  assert.deepEqual(
    releases.map((r) => r.status),
    ['success', 'success'],
  );
});
