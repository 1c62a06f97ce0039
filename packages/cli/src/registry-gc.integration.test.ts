import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { RegistryStorage, collectFleetGarbage, releaseImages, startServer } from '@flotilla/server';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, tempDir } from '@flotilla/testkit';
import { flotilla } from './test-support/cli-runner.js';

/** A project of `services` (name → Dockerfile lines after FROM busybox), written to `dir`. */
async function project(dir: string, services: Record<string, string[]>): Promise<string> {
  const compose = ['services:'];
  for (const [name, lines] of Object.entries(services)) {
    await mkdir(join(dir, name), { recursive: true });
    await writeFile(
      join(dir, name, 'Dockerfile'),
      [`FROM ${BUSYBOX_IMAGE}`, ...lines, 'CMD ["sleep","3600"]', ''].join('\n'),
    );
    compose.push(`  ${name}:`, `    build: ${name}`);
  }
  await writeFile(join(dir, 'docker-compose.yml'), `${compose.join('\n')}\n`);
  return dir;
}

test('registry garbage collection after a fleet is deleted: its images go, layers another fleet shares stay pullable', async () => {
  await ensureBusyboxImage();
  const dir = await tempDir('flotilla-gc-e2e-');
  const dataDir = join(dir.path, 'data');
  const server = await startServer({ dataDir, host: '127.0.0.1', port: 0 });
  const config = join(dir.path, 'config');
  const host = new URL(server.url).host;
  const nonce = randomBytes(6).toString('hex');
  const localImages: string[] = [];
  try {
    assert.equal((await flotilla(config, ['login', '--url', server.url, '--api-key', server.admin!.apiKey])).code, 0);
    for (const slug of ['keep', 'drop']) assert.equal((await flotilla(config, ['fleet', 'create', slug])).code, 0);
    // The same web service in both fleets (its layers are mounted from one repository into the other), and a
    // service with a layer of its own only in the fleet that goes.
    const web = [`RUN echo shared-${nonce} > /shared`];
    const keepProject = await project(join(dir.path, 'keep'), { web });
    const dropProject = await project(join(dir.path, 'drop'), { web, extra: [`RUN echo only-${nonce} > /only`] });
    const deploy = async (slug: string, folder: string) => {
      const result = await flotilla(config, ['deploy', slug, folder, '--json']);
      assert.equal(result.code, 0, result.stderr);
      const deployed = JSON.parse(result.stdout) as { release: { commit: string }; images: Record<string, string> };
      for (const service of Object.keys(deployed.images))
        localImages.push(`${host}/${slug}/${service}:${deployed.release.commit}`, deployed.images[service]!);
      return deployed.images;
    };
    const kept = await deploy('keep', keepProject);
    const dropped = await deploy('drop', dropProject);
    assert.equal((await flotilla(config, ['fleet', 'rm', 'drop'])).code, 0);

    const storage = new RegistryStorage(join(dataDir, 'registry'));
    const images = await releaseImages(server.app.flotilla.db);
    assert.deepEqual(images, [kept.web], 'only the kept fleet has releases left');
    // As if two days had passed: nothing is young any more.
    const result = await collectFleetGarbage(server.app.flotilla.db, storage, {
      now: Date.now() + 2 * 24 * 3600 * 1000,
    });
    assert.ok(result.blobsRemoved >= 3 && result.bytesFreed > 0, JSON.stringify(result));
    assert.equal(result.manifestsRemoved, 2, 'drop/web and drop/extra');

    // The kept release still pulls and runs after its local copies are gone.
    for (const image of localImages) await run('docker', ['rmi', '-f', image]).catch(() => undefined);
    await run('docker', ['login', '-u', 'x', '--password-stdin', host], { input: server.admin!.apiKey });
    try {
      await run('docker', ['pull', kept.web!]);
      assert.equal(
        (await run('docker', ['run', '--rm', kept.web!, 'cat', '/shared'])).stdout.trim(),
        `shared-${nonce}`,
      );
      await assert.rejects(run('docker', ['pull', dropped.extra!]), "the deleted fleet's own image is gone");
    } finally {
      await run('docker', ['logout', host]).catch(() => undefined);
    }
  } finally {
    await server.close();
    for (const image of localImages) await run('docker', ['rmi', '-f', image]).catch(() => undefined);
    await dir.remove();
  }
});
