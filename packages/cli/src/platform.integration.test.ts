/**
 * `flotilla deploy` builds for the fleet's device type (or `--platform`) and refuses images the devices cannot run.
 * This machine is amd64 without QEMU: a `FROM scratch` + COPY service builds for arm64 without emulation, a base
 * image that exists only for amd64 cannot, and a RUN step of an arm64 image cannot execute.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Fleet, Release } from '@flotilla/protocol';
import { startServer } from '@flotilla/server';
import type { RunningServer } from '@flotilla/server';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, tempDir } from '@flotilla/testkit';
import { flotilla, flotillaJson } from './test-support/cli-runner.js';

let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
let config: string;
let host: string;
/** An arm64 image whose /bin/sh is an aarch64 ELF: a RUN step on it needs emulation this machine lacks. */
const ARM64_SHELL_IMAGE = `flotilla-test/arm64-shell-${process.pid}:latest`;

interface Deployed {
  release: { id: number; commit: string; status: string };
  images: Record<string, string>;
}

before(async () => {
  await ensureBusyboxImage();
  dir = await tempDir('flotilla-cli-platform-');
  config = join(dir.path, 'config');
  server = await startServer({ dataDir: join(dir.path, 'data'), host: '127.0.0.1', port: 0 });
  host = new URL(server.url).host;
  const login = await flotilla(config, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? '']);
  assert.equal(login.code, 0, login.stderr);
  await flotillaJson<Fleet>(config, ['fleet', 'create', 'Pis', '--slug', 'pis', '--device-type', 'raspberrypi4-64']);
});

after(async () => {
  await server?.close();
  // By name, never by image id: a built image can share its id with the busybox base the other tests use.
  const refs = (await run('docker', ['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}}'])).stdout
    .split('\n')
    .filter((l) => l.startsWith(`${host}/`))
    .flatMap((l) => {
      const [repository, tag, digest] = l.split(' ');
      return [
        tag && tag !== '<none>' ? `${repository}:${tag}` : '',
        digest && digest !== '<none>' ? `${repository}@${digest}` : '',
      ].filter(Boolean);
    });
  if (refs.length > 0) await run('docker', ['rmi', '-f', ...refs]).catch(() => undefined);
  await run('docker', ['rmi', '-f', ARM64_SHELL_IMAGE]).catch(() => undefined);
  await dir?.remove();
});

/** A one-service compose project with this Dockerfile (and a file to COPY). */
async function project(name: string, dockerfile: string): Promise<string> {
  const root = join(dir.path, name);
  await mkdir(join(root, 'app'), { recursive: true });
  await writeFile(join(root, 'app', 'Dockerfile'), dockerfile);
  await writeFile(join(root, 'app', 'hello.txt'), 'hello\n');
  await writeFile(join(root, 'docker-compose.yml'), 'services:\n  app:\n    build: app\n');
  return root;
}

const SCRATCH = 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n';
const BUSYBOX = `FROM ${BUSYBOX_IMAGE}\nCMD ["sleep","3600"]\n`;

/** The registry's word on an image: the config blob of the manifest `reference` (a digest or tag) names. */
async function registryPlatform(
  repository: string,
  reference: string,
): Promise<{ status: number; os?: string; architecture?: string }> {
  const headers = {
    authorization: `Basic ${Buffer.from(`flotilla:${server.admin?.apiKey ?? ''}`).toString('base64')}`,
    accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json',
  };
  const manifest = await fetch(`${server.url}/v2/${repository}/manifests/${reference}`, { headers });
  if (!manifest.ok) return { status: manifest.status };
  const { config: blob } = (await manifest.json()) as { config: { digest: string } };
  const configBlob = await fetch(`${server.url}/v2/${repository}/blobs/${blob.digest}`, { headers });
  assert.equal(configBlob.status, 200);
  const { os, architecture } = (await configBlob.json()) as { os: string; architecture: string };
  return { status: 200, os, architecture };
}

const releases = (fleet: string) => flotillaJson<Release[]>(config, ['release', 'list', fleet]);

test('an arm64 fleet gets arm64 images: built for its device type, and image-only services pulled for it', async () => {
  const root = await project('scratch', SCRATCH);
  const result = await flotilla(config, ['deploy', 'pis', root, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const deployed = JSON.parse(result.stdout) as Deployed;
  assert.equal(deployed.release.status, 'success');
  const digest = deployed.images.app?.split('@')[1] ?? '';
  assert.match(digest, /^sha256:[a-f0-9]{64}$/);
  // Without a platform the engine would have built linux/amd64 here.
  assert.deepEqual(await registryPlatform('pis/app', digest), { status: 200, os: 'linux', architecture: 'arm64' });
  assert.equal(
    (
      await run('docker', [
        'image',
        'inspect',
        '--format',
        '{{.Architecture}}',
        `${host}/pis/app:${deployed.release.commit}`,
      ])
    ).stdout.trim(),
    'arm64',
  );

  // An image-only service naming that arm64 image, which the engine no longer has: pulled, checked, pushed.
  await run('docker', ['rmi', '-f', `${host}/pis/app:${deployed.release.commit}`]);
  const imageOnly = join(dir.path, 'image-only');
  await mkdir(imageOnly, { recursive: true });
  await writeFile(join(imageOnly, 'docker-compose.yml'), `services:\n  copy:\n    image: ${deployed.images.app}\n`);
  const pulled = await flotilla(config, ['deploy', 'pis', imageOnly, '--json']);
  assert.equal(pulled.code, 0, pulled.stderr);
  assert.match(pulled.stderr, /\[copy\] pulling .+ for linux\/arm64/);
  assert.equal((JSON.parse(pulled.stdout) as Deployed).images.copy?.split('@')[1], digest);

  // The same arm64 image for an amd64 fleet is refused before anything is pushed.
  await flotillaJson<Fleet>(config, ['fleet', 'create', 'PCs', '--slug', 'pcs', '--device-type', 'generic-amd64']);
  const refused = await flotilla(config, ['deploy', 'pcs', imageOnly]);
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr.split('\n').at(-2) ?? '',
    /^error: service copy: image \S+ is linux\/arm64, but fleet pcs \(generic-amd64\) needs linux\/amd64; use an image published for linux\/amd64 \(PLATFORM_MISMATCH\)$/,
  );
  assert.deepEqual(
    (await releases('pcs')).map((r) => r.status),
    ['failed'],
  );
  assert.equal(
    (await registryPlatform('pcs/copy', (await releases('pcs'))[0]?.commit ?? '')).status,
    404,
    'nothing pushed',
  );
});

test('a base image that exists only for amd64 is refused for an arm64 fleet: PLATFORM_MISMATCH, one line, nothing pushed', async () => {
  const root = await project('busybox', BUSYBOX);
  const before = await releases('pis');
  const result = await flotilla(config, ['deploy', 'pis', root]);
  assert.equal(result.code, 1);
  const lines = result.stderr.trimEnd().split('\n');
  const last = lines.at(-1) ?? '';
  assert.match(
    last,
    /^error: service app was built for linux\/amd64, but fleet pis \(raspberrypi4-64\) needs linux\/arm64: /,
  );
  assert.match(
    last,
    new RegExp(
      `its base image ${BUSYBOX_IMAGE.replace(/[/.]/g, '\\$&')} is linux/amd64 on this machine; use a base image published for linux/arm64`,
    ),
  );
  assert.match(last, / \(PLATFORM_MISMATCH\)$/);
  assert.ok(!lines.some((l) => /^\s+at /.test(l)), 'no stack trace');
  const after = await releases('pis');
  assert.equal(after.length, before.length + 1);
  const release = after.find((r) => !before.some((b) => b.id === r.id));
  assert.equal(release?.status, 'failed');
  assert.equal(
    (await registryPlatform('pis/app', release?.commit ?? '')).status,
    404,
    'the amd64 image was not pushed',
  );
});

test('--platform overrides the device type, and a bad one is VALIDATION_FAILED before anything happens', async () => {
  const root = await project('busybox-override', BUSYBOX);
  const result = await flotilla(config, ['deploy', 'pis', root, '--platform', 'linux/amd64', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const deployed = JSON.parse(result.stdout) as Deployed;
  assert.equal(deployed.release.status, 'success');
  assert.deepEqual(await registryPlatform('pis/app', deployed.images.app?.split('@')[1] ?? ''), {
    status: 200,
    os: 'linux',
    architecture: 'amd64',
  });

  const before = await releases('pis');
  for (const bad of ['nonsense', 'linux/arm64/v7', 'windows/amd64']) {
    const invalid = await flotilla(config, ['deploy', 'pis', root, '--platform', bad]);
    assert.equal(invalid.code, 1);
    assert.equal(
      invalid.stderr,
      `error: invalid --platform "${bad}": give os/arch[/variant], one of linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6 or linux/386 (VALIDATION_FAILED)\n`,
    );
  }
  assert.equal((await releases('pis')).length, before.length, 'no release created');
});

test('an unknown device type needs --platform: UNKNOWN_DEVICE_TYPE, no release', async () => {
  await flotillaJson<Fleet>(config, ['fleet', 'create', 'Toasters', '--slug', 'toasters', '--device-type', 'toaster']);
  const root = await project('toaster', SCRATCH);
  const result = await flotilla(config, ['deploy', 'toasters', root]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^error: fleet toasters has device type "toaster", whose CPU architecture flotilla does not know; pass --platform .+ \(UNKNOWN_DEVICE_TYPE\)\n$/,
  );
  assert.deepEqual(await releases('toasters'), []);

  const named = await flotilla(config, ['deploy', 'toasters', root, '--platform', 'linux/arm/v7', '--json']);
  assert.equal(named.code, 0, named.stderr);
  const deployed = JSON.parse(named.stdout) as Deployed;
  assert.deepEqual(await registryPlatform('toasters/app', deployed.images.app?.split('@')[1] ?? ''), {
    status: 200,
    os: 'linux',
    architecture: 'arm',
  });
});

test('a RUN step of a foreign-architecture image: one line that says to install QEMU emulation', async () => {
  // An arm64 "shell": an aarch64 ELF header the amd64 kernel refuses with ENOEXEC, as it would a real arm64 binary.
  const base = join(dir.path, 'arm64-shell');
  await mkdir(base, { recursive: true });
  const elf = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(elf);
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(183, 18); // EM_AARCH64
  elf.writeUInt32LE(1, 20);
  elf.writeUInt16LE(64, 52);
  await writeFile(join(base, 'sh'), elf, { mode: 0o755 });
  await writeFile(join(base, 'Dockerfile'), 'FROM scratch\nCOPY sh /bin/sh\n');
  await run('docker', ['build', '-q', '--platform', 'linux/arm64', '-t', ARM64_SHELL_IMAGE, base]);

  const root = await project('run-step', `FROM ${ARM64_SHELL_IMAGE}\nRUN echo hi > /greeting\n`);
  const result = await flotilla(config, ['deploy', 'pis', root]);
  assert.equal(result.code, 1);
  const last = result.stderr.trimEnd().split('\n').at(-1) ?? '';
  assert.match(
    last,
    /^error: building app for linux\/arm64 failed: step "RUN echo hi > \/greeting" could not run because this machine \(linux\/amd64\) cannot execute linux\/arm64 programs \(exec format error\); install QEMU user emulation .*qemu-user-static binfmt-support.*, or build on a linux\/arm64 machine \(BUILD_FAILED\)$/,
  );
  assert.equal((await releases('pis')).at(0)?.status, 'failed');
});
