/**
 * `flotilla os preload` end to end: a disk image made here (sparse file, sfdisk, mkfs.ext4 at an offset), a release
 * deployed to a real server from a busybox image, the real CLI writing it into the image's data partition, then the
 * partition mounted and the real agent started on it with the control plane unreachable and the release's images
 * gone from the engine: it must load them from the image and run the release. Then the control plane comes back and
 * the device reports that release as running.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { startAgent } from '@flotilla/agent';
import type { AgentHandle } from '@flotilla/agent';
import { LABELS, deltaTag } from '@flotilla/protocol';
import type { Device } from '@flotilla/protocol';
import { startServer } from '@flotilla/server';
import type { RunningServer } from '@flotilla/server';
import { BUSYBOX_IMAGE, ensureBusyboxImage, freePort, run, tempDir, waitFor } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
let cli: string;
let agent: AgentHandle | undefined;
const mounts: string[] = [];
const namespace = `preload${process.pid}x`;
const fleet = `preload-${process.pid}`;
let release: { id: number; commit: string };
let n = 0;

/** A sparse GPT disk image: a FAT boot partition, then (unless `dataMiB` is 0) an ext4 one labelled `label`. */
async function makeImage(dataMiB: number, label = 'resin-data'): Promise<{ path: string; dataOffset: number }> {
  const path = join(dir.path, `disk-${++n}.img`);
  await exec('truncate', ['-s', `${1 + 8 + dataMiB + 1}M`, path]);
  const lines = ['label: gpt', 'start=2048, size=16384, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="resin-boot"'];
  if (dataMiB > 0) lines.push(`start=18432, size=${dataMiB * 2048}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4`);
  await new Promise<void>((resolve, reject) => {
    const child = execFile('sfdisk', ['-q', path], (error) => (error ? reject(error) : resolve()));
    child.stdin?.end(`${lines.join('\n')}\n`);
  });
  await exec('mkfs.vfat', ['-F', '16', '-s', '1', '--offset', '2048', '-n', 'RESIN-BOOT', path, String(8 * 1024)]);
  const dataOffset = 9 * MiB;
  if (dataMiB > 0)
    await exec('mkfs.ext4', ['-q', '-F', '-L', label, '-E', `offset=${dataOffset}`, path, `${dataMiB * 1024}k`]);
  return { path, dataOffset };
}

const sha256 = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

async function releaseImages(): Promise<string[]> {
  const host = new URL(server.url).host;
  return (await run('docker', ['images', '--no-trunc', '--format', '{{.Repository}}@{{.ID}}'])).stdout
    .split('\n')
    .filter((line) => line.startsWith(`${host}/`))
    .map((line) => line.split('@')[1] ?? '');
}

async function removeReleaseImages(): Promise<void> {
  const ids = [...new Set(await releaseImages())].filter(Boolean);
  if (ids.length > 0) await run('docker', ['rmi', '-f', ...ids]).catch(() => undefined);
}

async function cleanup(): Promise<void> {
  const label = `label=io.flotilla.namespace=${namespace}`;
  const ids = (await run('docker', ['ps', '-aq', '--filter', label])).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await run('docker', ['rm', '-f', '-v', ...ids]).catch(() => undefined);
  for (const kind of ['volume', 'network'] as const) {
    const names = (await run('docker', [kind, 'ls', '-q', '--filter', label])).stdout.split('\n').filter(Boolean);
    if (names.length > 0) await run('docker', [kind, 'rm', ...names]).catch(() => undefined);
  }
  if (server) await removeReleaseImages();
}

before(async () => {
  await ensureBusyboxImage();
  dir = await tempDir('flotilla-preload-');
  cli = join(dir.path, 'cli');
  server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0 });
  const login = await flotilla(cli, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? '']);
  assert.equal(login.code, 0, login.stderr);
  await flotillaJson(cli, ['fleet', 'create', 'Preload', '--slug', fleet]);
  await flotillaJson(cli, ['env', 'add', 'GREETING', 'offline-hello', '--fleet', fleet]);
  const project = join(dir.path, 'project');
  await mkdir(join(project, 'main'), { recursive: true });
  await writeFile(
    join(project, 'main', 'Dockerfile'),
    `FROM ${BUSYBOX_IMAGE}\nRUN echo preloaded > /marker\nCMD ["sh","-c","trap 'exit 0' TERM; sleep 3600 & wait"]\n`,
  );
  await writeFile(join(project, 'docker-compose.yml'), 'services:\n  main:\n    build: main\n');
  release = (await flotillaJson<{ release: { id: number; commit: string } }>(cli, ['deploy', fleet, project])).release;
});

after(async () => {
  await agent?.stop();
  for (const mount of mounts.reverse()) await exec('umount', [mount]).catch(() => undefined);
  await server?.close();
  await cleanup();
  await dir?.remove();
});

describe('flotilla os preload', () => {
  test('refuses an image without a data partition, leaving it unchanged', async () => {
    const image = await makeImage(0);
    const before = await sha256(image.path);
    const result = await flotilla(cli, ['os', 'preload', image.path, '--fleet', fleet]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no ext4 partition labelled resin-data.*\(DATA_PARTITION_NOT_FOUND\)/);
    assert.equal(await sha256(image.path), before);
  });

  test('refuses a data partition too small for the release, leaving the image unchanged', async () => {
    const image = await makeImage(2);
    const before = await sha256(image.path);
    const result = await flotilla(cli, ['os', 'preload', image.path, '--fleet', fleet]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /needs .* MiB in data partition 2 \(resin-data\).*\(DATA_PARTITION_FULL\)/);
    assert.equal(await sha256(image.path), before);
  });

  test('two preloads at once on one image: one writes, the other refuses with DISK_IMAGE_BUSY; mode kept', async () => {
    const image = await makeImage(64);
    await chmod(image.path, 0o644);
    const runs = await Promise.all(
      [0, 1].map(() =>
        flotilla(cli, ['os', 'preload', image.path, '--fleet', fleet], {
          env: { FLOTILLA_TEST_IMAGE_LOCK_HOLD_MS: '2000' },
        }),
      ),
    );
    const codes = runs.map((r) => r.code).sort();
    assert.deepEqual(codes, [0, 1], runs.map((r) => r.stderr).join('\n'));
    assert.match(runs.find((r) => r.code === 1)?.stderr ?? '', /\(DISK_IMAGE_BUSY\)/);
    await exec('e2fsck', ['-fn', `${image.path}?offset=${image.dataOffset}`]);
    const { stdout } = await exec('debugfs', [
      '-R',
      'ls -p flotilla/preload',
      `${image.path}?offset=${image.dataOffset}`,
    ]);
    assert.match(stdout, /manifest\.json/);
    assert.equal((await stat(image.path)).mode & 0o777, 0o644);
    assert.deepEqual(
      (await readdir(dir.path)).filter((name) => name.includes('flotilla-lock')),
      [],
    );
  });

  test('a device flashed with the image runs the release offline, then reports it once online', async () => {
    const image = await makeImage(64);
    // A second run replaces the first preload (its files removed through debugfs, the manifest first).
    await flotillaJson(cli, ['os', 'preload', image.path, '--fleet', fleet, '--release', String(release.id)]);
    const written = await flotillaJson<{ release: string; images: { ref: string }[]; partition: { label: string } }>(
      cli,
      ['os', 'preload', image.path, '--fleet', fleet],
    );
    assert.equal(written.release, release.commit);
    assert.equal(written.partition.label, 'resin-data');
    // The filesystem is consistent (e2fsck exits non-zero on any error it finds; -n changes nothing).
    await exec('e2fsck', ['-fn', `${image.path}?offset=${image.dataOffset}`]);

    const mount = join(dir.path, 'data');
    await mkdir(mount);
    await exec('mount', ['-o', `loop,offset=${image.dataOffset}`, image.path, mount]);
    mounts.push(mount);
    const manifest = JSON.parse(await readFile(join(mount, 'flotilla', 'preload', 'manifest.json'), 'utf8'));
    assert.equal(manifest.release.commit, release.commit);

    // The engine must get the images from the disk image: the copies deploy left are removed, the server unreachable.
    await removeReleaseImages();
    assert.deepEqual(await releaseImages(), []);
    const configJson = join(dir.path, 'config.json');
    await flotillaJson(cli, ['os', 'config', fleet, '-o', configJson, '--poll-interval', '10000']);
    const config = JSON.parse(await readFile(configJson, 'utf8'));
    const closed = `http://127.0.0.1:${await freePort()}`;
    await writeFile(configJson, JSON.stringify({ ...config, apiEndpoint: closed }));
    const options = {
      configPath: configJson,
      dataDir: join(mount, 'flotilla'),
      namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      apiPort: 0,
      logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
    };
    agent = await startAgent(options);
    const running = await waitFor(
      'the preloaded release to run with no control plane',
      async () => {
        const ids = (await run('docker', ['ps', '-q', '--filter', `label=io.flotilla.namespace=${namespace}`])).stdout
          .split('\n')
          .filter(Boolean);
        if (ids.length !== 1) return undefined;
        const [c] = JSON.parse((await run('docker', ['inspect', ...ids])).stdout) as Array<{
          Name: string;
          Config: { Labels: Record<string, string>; Env: string[] };
        }>;
        return c?.Config.Labels[LABELS.serviceName] === 'main' ? c : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.match(running.Name, new RegExp(`_${release.id}_[0-9a-f]+$`), 'the container is of the preloaded release');
    assert.ok(running.Config.Env.includes('GREETING=offline-hello'), "the fleet's variables came with it");
    const ref = manifest.images[0].ref as string;
    assert.equal(
      (await run('docker', ['image', 'inspect', '-f', '{{.Id}}', deltaTag(ref) ?? ''])).stdout.trim(),
      manifest.images[0].imageId,
    );
    assert.deepEqual(
      await exec('ls', [join(mount, 'flotilla', 'preload')]).then((r) => r.stdout.trim()),
      'manifest.json',
    );

    // Back online: the same data folder, the real control plane. The device registers and reports the release.
    await agent.stop();
    agent = undefined;
    // As the agent left it (with the identity it made), with the reachable endpoint.
    const provisioned = JSON.parse(await readFile(configJson, 'utf8'));
    await writeFile(configJson, JSON.stringify({ ...provisioned, apiEndpoint: config.apiEndpoint }));
    agent = await startAgent(options);
    const device = await waitFor(
      'the device to register and report the preloaded release',
      async () => {
        const [found] = await flotillaJson<Device[]>(cli, ['device', 'list', '--fleet', fleet]);
        return found?.runningRelease === release.commit ? found : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    assert.equal(device.runningRelease, release.commit);
  });
});
