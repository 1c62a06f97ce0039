import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
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
const createdImages: string[] = [];

before(async () => {
  dir = await tempDir('flotilla-cli-');
  config = join(dir.path, 'config');
  server = await startServer({ dataDir: join(dir.path, 'data'), host: '127.0.0.1', port: 0 });
  assert.ok(server.admin, 'a fresh server creates an admin');
});
after(async () => {
  await server.close();
  for (const image of createdImages) await run('docker', ['rmi', '-f', image]).catch(() => undefined);
  await dir.remove();
});

test('login stores credentials 0600; whoami; errors are one line with a code', async () => {
  let r = await flotilla(config, ['whoami']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: not logged in; run `flotilla login --url <server> --api-key <key>` (NOT_LOGGED_IN)\n');
  r = await flotilla(config, ['login', '--url', server.url, '--api-key', 'wrong-key']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .+ \((UNAUTHENTICATED|INVALID_CREDENTIALS)\)\n$/);
  r = await flotilla(config, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? '']);
  assert.equal(r.code, 0, r.stderr);
  const file = join(config, 'credentials.json');
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { url: server.url, token: server.admin?.apiKey });
  const who = await flotillaJson<{ user: { username: string } }>(config, ['whoami']);
  assert.equal(who.user.username, server.admin?.username);
  // Username/password login gets a session token.
  const other = join(dir.path, 'config-2');
  r = await flotilla(other, [
    'login',
    '--url',
    server.url,
    '--username',
    server.admin?.username ?? '',
    '--password',
    server.admin?.password ?? '',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await flotilla(other, ['logout'])).code, 0);
  assert.equal((await flotilla(other, ['whoami'])).code, 1);
  // Usage errors have the same shape.
  r = await flotilla(config, ['fleet', 'info']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: missing required argument 'fleet' \(VALIDATION_FAILED\)\n$/);
  r = await flotilla(config, ['device', 'info', 'no such device']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: no device "no such device" (DEVICE_NOT_FOUND)\n');
  r = await flotilla(config, ['device', 'info', 'bad\tname']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\(VALIDATION_FAILED\)\n$/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('fleets, variables, keys, os config, releases and device actions', async () => {
  const fleet = await flotillaJson<Fleet>(config, ['fleet', 'create', 'Kitchen Sensors', '--slug', 'kitchen']);
  assert.equal(fleet.slug, 'kitchen');
  let r = await flotilla(config, ['fleet', 'list']);
  assert.match(r.stdout, /^SLUG\s+NAME/m);
  assert.match(r.stdout, /^kitchen\s+Kitchen Sensors/m);
  r = await flotilla(config, ['fleet', 'info', 'nope']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.split('\n').length, 2);
  assert.match(r.stderr, /\(FLEET_NOT_FOUND\)\n$/);

  await flotillaJson(config, ['env', 'add', 'GREETING', 'hello', '--fleet', 'kitchen']);
  await flotillaJson(config, ['env', 'add', 'GREETING', 'hi', '--fleet', 'kitchen', '--service', 'web']);
  let vars = await flotillaJson<Array<{ name: string; value: string; service: string | null }>>(config, [
    'env',
    'list',
    '--fleet',
    'kitchen',
  ]);
  assert.deepEqual(vars.map((v) => [v.name, v.value, v.service]).sort(), [
    ['GREETING', 'hello', null],
    ['GREETING', 'hi', 'web'],
  ]);
  await flotillaJson(config, ['env', 'rm', 'GREETING', '--fleet', 'kitchen', '--service', 'web']);
  vars = await flotillaJson(config, ['env', 'list', '--fleet', 'kitchen']);
  assert.deepEqual(
    vars.map((v) => v.service),
    [null],
  );
  r = await flotilla(config, ['env', 'list']);
  assert.match(r.stderr, /give exactly one of --fleet or --device \(VALIDATION_FAILED\)/);
  await flotillaJson(config, ['config', 'add', 'BALENA_SUPERVISOR_POLL_INTERVAL', '10000', '--fleet', 'kitchen']);
  assert.equal((await flotillaJson<unknown[]>(config, ['config', 'list', '--fleet', 'kitchen'])).length, 1);

  const key = await flotillaJson<{ id: number; key: string }>(config, ['key', 'create', 'ci']);
  assert.ok(key.key.length > 20);
  assert.ok((await flotillaJson<Array<{ id: number }>>(config, ['key', 'list'])).some((k) => k.id === key.id));
  await flotillaJson(config, ['key', 'rm', String(key.id)]);

  const configFile = join(dir.path, 'config.json');
  await flotillaJson(config, ['os', 'config', 'kitchen', '-o', configFile, '--hostname', 'probe-1', '--dev']);
  const written = JSON.parse(await readFile(configFile, 'utf8')) as {
    apiEndpoint: string;
    hostname: string;
    developmentMode: boolean;
  };
  assert.equal(written.hostname, 'probe-1');
  assert.equal(written.developmentMode, true);
  assert.equal(written.apiEndpoint.replace(/\/$/, ''), server.url);
  r = await flotilla(config, ['os', 'config', 'kitchen', '-o', configFile, '--hostname', 'bad_host!']);
  assert.match(r.stderr, /\(VALIDATION_FAILED\)\n$/);

  assert.deepEqual(await flotillaJson<Release[]>(config, ['release', 'list', 'kitchen']), []);
  r = await flotilla(config, ['device', 'restart', '0123456789abcdef0123456789abcdef']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .+ \([A-Z_]+\)\n$/);
});

test('deploy builds, pushes and records a successful release; a failed build marks it failed', async () => {
  await ensureBusyboxImage();
  await flotillaJson<Fleet>(config, ['fleet', 'create', 'Deploy Test', '--slug', 'deploy-test']);
  const project = join(dir.path, 'project');
  await mkdir(join(project, 'web'), { recursive: true });
  await mkdir(join(project, 'worker'), { recursive: true });
  await writeFile(
    join(project, 'web', 'Dockerfile'),
    `FROM ${BUSYBOX_IMAGE}\nARG FLAVOUR\nCOPY . /app\nRUN echo "$FLAVOUR" > /flavour\nCMD ["sleep","3600"]\n`,
  );
  await writeFile(join(project, 'web', 'secret.txt'), 'must not be sent');
  await writeFile(join(project, 'web', '.dockerignore'), 'secret.txt\n');
  await writeFile(join(project, 'worker', 'Dockerfile.worker'), `FROM ${BUSYBOX_IMAGE}\nCMD ["sleep","3600"]\n`);
  await writeFile(
    join(project, 'docker-compose.yml'),
    'services:\n  web:\n    build:\n      context: web\n      args:\n        FLAVOUR: mint\n    volumes: ["data:/data"]\n  worker:\n    build:\n      context: worker\n      dockerfile: Dockerfile.worker\n    depends_on: [web]\nvolumes:\n  data: {}\n',
  );
  const result = await flotilla(config, ['deploy', 'deploy-test', project, '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /\[web\] pushing /);
  // Services build at the same time: the second starts before the first has been built and pushed.
  const workerStarted = result.stderr.indexOf('[worker] building');
  assert.ok(workerStarted >= 0 && workerStarted < result.stderr.indexOf('[web] pushing'), result.stderr);
  const deployed = JSON.parse(result.stdout) as {
    release: { id: number; commit: string; version: string; status: string };
    images: Record<string, string>;
  };
  assert.equal(deployed.release.status, 'success');
  const host = new URL(server.url).host;
  for (const service of ['web', 'worker']) {
    assert.match(deployed.images[service] ?? '', new RegExp(`^${host}/deploy-test/${service}@sha256:[a-f0-9]{64}$`));
    createdImages.push(`${host}/deploy-test/${service}:${deployed.release.commit}`);
  }
  const info = await flotillaJson<Release>(config, ['release', 'info', String(deployed.release.id)]);
  assert.equal(info.status, 'success');
  assert.deepEqual(info.services.map((s) => s.image).sort(), [deployed.images.web, deployed.images.worker].sort());
  // Who deployed it, and what each image weighs in the registry, in JSON and in words.
  assert.equal(info.createdBy?.username, server.admin?.username);
  assert.ok(
    info.services.every((s) => (s.imageSize ?? 0) > 0),
    'the registry holds both images',
  );
  const human = await flotilla(config, ['release', 'info', String(deployed.release.id)]);
  assert.match(human.stdout, new RegExp(`^by: +${server.admin?.username}$`, 'm'));
  assert.match(human.stdout, /^size: +\d+\.\d (KiB|MiB)$/m);
  assert.match(human.stdout, /^web +\S+@sha256:[a-f0-9]{64} +\d+\.\d (KiB|MiB)$/m);
  // The image really is in the registry: pull it back by digest after removing the local copy.
  await run('docker', ['rmi', '-f', `${host}/deploy-test/web:${deployed.release.commit}`]);
  await run('docker', ['login', '-u', 'x', '--password-stdin', host], { input: server.admin?.apiKey ?? '' });
  try {
    await run('docker', ['pull', deployed.images.web ?? '']);
    createdImages.push(deployed.images.web ?? '');
    assert.equal(
      (await run('docker', ['run', '--rm', deployed.images.web ?? '', 'cat', '/flavour'])).stdout.trim(),
      'mint',
    );
    await assert.rejects(run('docker', ['run', '--rm', deployed.images.web ?? '', 'cat', '/app/secret.txt']));
  } finally {
    await run('docker', ['logout', host]).catch(() => undefined);
  }

  // A broken Dockerfile: the command fails with BUILD_FAILED and the release is marked failed.
  await writeFile(join(project, 'worker', 'Dockerfile.worker'), `FROM ${BUSYBOX_IMAGE}\nRUN exit 3\n`);
  const failed = await flotilla(config, ['deploy', 'deploy-test', project]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /\(BUILD_FAILED\)\n$/);
  const releases = await flotillaJson<Release[]>(config, ['release', 'list', 'deploy-test']);
  assert.deepEqual(releases.map((r) => r.status).sort(), ['failed', 'success']);
  const fleet = await flotillaJson<Fleet>(config, ['fleet', 'info', 'deploy-test']);
  assert.equal(fleet.targetRelease?.id, deployed.release.id);

  // Invalid compose names the key.
  await writeFile(join(project, 'docker-compose.yml'), 'services:\n  web:\n    build: web\n    volume: ["x:/x"]\n');
  const invalid = await flotilla(config, ['deploy', 'deploy-test', project]);
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^error: docker-compose\.yml: services\.web: .*volume.* \(INVALID_COMPOSE\)\n$/);
  for (const r of releases)
    createdImages.push(`${host}/deploy-test/web:${r.commit}`, `${host}/deploy-test/worker:${r.commit}`);
});

test('deploy of an image-only service pulls it when the engine lacks it (from this registry with the user key), and fails clearly when nobody has it', async () => {
  await ensureBusyboxImage();
  await flotillaJson<Fleet>(config, ['fleet', 'create', 'Image Only', '--slug', 'image-only']);
  const host = new URL(server.url).host;
  // A base image that exists only in this server's registry once its local copy is gone.
  const base = join(dir.path, 'image-only-base');
  await mkdir(base, { recursive: true });
  await writeFile(
    join(base, 'Dockerfile'),
    `FROM ${BUSYBOX_IMAGE}\nRUN echo pulled-${process.pid} > /marker\nCMD ["sleep","3600"]\n`,
  );
  const first = await flotilla(config, ['deploy', 'image-only', base, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const published = JSON.parse(first.stdout) as { release: { commit: string }; images: Record<string, string> };
  const baseRef = published.images.main ?? '';
  assert.match(baseRef, new RegExp(`^${host}/image-only/main@sha256:`));
  await run('docker', ['rmi', '-f', `${host}/image-only/main:${published.release.commit}`]);
  await assert.rejects(run('docker', ['image', 'inspect', baseRef]), 'the engine no longer has the image');

  const project = join(dir.path, 'image-only-project');
  await mkdir(project, { recursive: true });
  await writeFile(join(project, 'docker-compose.yml'), `services:\n  app:\n    image: ${baseRef}\n`);
  const result = await flotilla(config, ['deploy', 'image-only', project, '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /\[app\] pulling /);
  const deployed = JSON.parse(result.stdout) as { release: { commit: string }; images: Record<string, string> };
  createdImages.push(baseRef, `${host}/image-only/app:${deployed.release.commit}`);
  // Same manifest, now in the app's own repository.
  assert.equal(deployed.images.app?.split('@')[1], baseRef.split('@')[1]);
  assert.equal(
    (await run('docker', ['run', '--rm', baseRef, 'cat', '/marker'])).stdout.trim(),
    `pulled-${process.pid}`,
  );

  // An image nobody has: one line, BUILD_FAILED, and the release is marked failed.
  await writeFile(
    join(project, 'docker-compose.yml'),
    `services:\n  app:\n    image: ${host}/image-only/missing:nope\n`,
  );
  const missing = await flotilla(config, ['deploy', 'image-only', project]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /could not be pulled.*\(BUILD_FAILED\)\n$/);
  const releases = await flotillaJson<Release[]>(config, ['release', 'list', 'image-only']);
  assert.deepEqual(releases.map((r) => r.status).sort(), ['failed', 'success', 'success']);
});
