import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { loadProject, validateComposition } from './load-project.js';

let dir: { path: string; remove: () => Promise<void> };
before(async () => {
  dir = await tempDir('flotilla-compose-');
});
after(async () => dir.remove());

async function project(name: string, files: Record<string, string>): Promise<string> {
  const root = join(dir.path, name);
  for (const [file, content] of Object.entries(files)) {
    await mkdir(join(root, file, '..'), { recursive: true });
    await writeFile(join(root, file), content);
  }
  await mkdir(root, { recursive: true });
  return root;
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof FlotillaError);
    assert.equal(error.code, 'INVALID_COMPOSE');
    assert.match(error.message, pattern);
    return true;
  });
}

test('a lone Dockerfile is one service named main', async () => {
  const root = await project('single', { Dockerfile: 'FROM scratch\n' });
  const p = await loadProject(root);
  assert.deepEqual(p.composition, { services: { main: { build: '.' } } });
  assert.deepEqual(p.services, [{ name: 'main', context: root, dockerfile: 'Dockerfile', buildArgs: {} }]);
});

test('compose: contexts, dockerfile, args (map and list), target, prebuilt image', async () => {
  const root = await project('multi', {
    'docker-compose.yaml':
      'services:\n  api:\n    build:\n      context: ./api\n      dockerfile: Dockerfile.prod\n      args: ["A=1", "B=two=2"]\n      target: run\n  web:\n    build: web\n  cache:\n    image: redis:7\nvolumes:\n  data:\n',
    'api/Dockerfile.prod': 'FROM scratch\n',
    'web/Dockerfile': 'FROM scratch\n',
  });
  const p = await loadProject(root);
  assert.deepEqual(p.services, [
    {
      name: 'api',
      context: join(root, 'api'),
      dockerfile: 'Dockerfile.prod',
      buildArgs: { A: '1', B: 'two=2' },
      target: 'run',
    },
    { name: 'web', context: join(root, 'web'), dockerfile: 'Dockerfile', buildArgs: {} },
    { name: 'cache', dockerfile: 'Dockerfile', buildArgs: {}, image: 'redis:7' },
  ]);
  assert.deepEqual(Object.keys(p.composition.volumes ?? {}), ['data']);
});

test('docker-compose.yml wins over a Dockerfile in the same folder', async () => {
  const root = await project('both', {
    'docker-compose.yml': 'services:\n  x:\n    build: .\n',
    Dockerfile: 'FROM scratch\n',
  });
  assert.deepEqual(
    (await loadProject(root)).services.map((s) => s.name),
    ['x'],
  );
});

test('invalid projects name the offending key', async () => {
  await rejectsWith(loadProject(await project('empty', {})), /no docker-compose.yml or Dockerfile/);
  await rejectsWith(
    loadProject(
      await project('typo', {
        'docker-compose.yml': 'services:\n  web:\n    build: .\n    enviroment: {}\n',
        Dockerfile: '',
      }),
    ),
    /services\.web: .*enviroment/,
  );
  await rejectsWith(
    loadProject(
      await project('port', { 'docker-compose.yml': 'services:\n  web:\n    image: x\n    ports: ["not a port"]\n' }),
    ),
    /services\.web\.ports\.0:/,
  );
  await rejectsWith(loadProject(await project('yaml', { 'docker-compose.yml': 'services: [\n' })), /not valid YAML/);
  await rejectsWith(
    loadProject(await project('nosvc', { 'docker-compose.yml': 'services: {}\n' })),
    /services: at least one service/,
  );
  await rejectsWith(
    loadProject(await project('escape', { 'docker-compose.yml': 'services:\n  web:\n    build: ../elsewhere\n' })),
    /must stay inside the project folder/,
  );
  await rejectsWith(
    loadProject(await project('nodockerfile', { 'docker-compose.yml': 'services:\n  web:\n    build: web\n' })),
    /services\.web\.build: no Dockerfile/,
  );
  await rejectsWith(
    loadProject(await project('neither', { 'docker-compose.yml': 'services:\n  web:\n    restart: always\n' })),
    /services\.web: needs build or image/,
  );
});

test('validateComposition accepts what the protocol accepts', () => {
  assert.deepEqual(validateComposition({ services: { a: { image: 'x', restart: 'always' } } }, 'f'), {
    services: { a: { image: 'x', restart: 'always' } },
  });
  assert.throws(
    () => validateComposition({ services: { a: { image: 'x', restart: 'sometimes' } } }, 'f.yml'),
    /f\.yml: services\.a\.restart:/,
  );
});
