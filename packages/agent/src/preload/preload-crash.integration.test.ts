import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { PRELOAD_MANIFEST_FILE, deltaTag, preloadManifestSchema } from '@flotilla/protocol';
import { freePort, waitFor } from '@flotilla/testkit';
import { exitWithin, spawnAgent } from '../test-support/agent-process.js';
import { buildImage, cleanup, docker, harness, ourContainers, serviceOf } from '../test-support/fixtures.js';

/**
 * The real agent binary SIGKILLed in the middle of `docker load` of the first of two preloaded images (the
 * during:loadImage failpoint), then started again with no control plane: it must load both, run the release, and
 * remove the tars.
 */
test('kill -9 during the docker load of a preload, then restart: the release runs and the tars are gone', async () => {
  // No control plane reachable: the release can only come from the preload.
  const h = await harness({ apiEndpoint: `http://127.0.0.1:${await freePort()}` });
  const nonce = randomBytes(4).toString('hex');
  const locals = [`flotilla-agent-it/preload:a-${nonce}`, `flotilla-agent-it/preload:b-${nonce}`];
  const refs = locals.map(
    (_, i) => `registry.invalid:5000/v2/preload-${nonce}-${i}@sha256:${randomBytes(32).toString('hex')}`,
  );
  const tags = refs.map((ref) => deltaTag(ref) as string);
  const agents: ChildProcess[] = [];
  try {
    const dir = join(h.dataDir, 'preload');
    await mkdir(dir, { recursive: true });
    const images = [];
    for (const [i, local] of locals.entries()) {
      await buildImage(local, `preload-${i}`);
      const { Id: imageId } = await docker.getImage(local).inspect();
      const tag = tags[i] as string;
      await docker
        .getImage(local)
        .tag({ repo: tag.slice(0, tag.lastIndexOf(':')), tag: tag.slice(tag.lastIndexOf(':') + 1) });
      const file = `image-${i + 1}.tar`;
      const hash = createHash('sha256');
      let size = 0;
      const tar = (await docker.getImage(tag).get()) as NodeJS.ReadableStream;
      tar.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      await pipeline(tar, createWriteStream(join(dir, file)));
      images.push({ ref: refs[i] as string, imageId, file, sha256: `sha256:${hash.digest('hex')}`, size });
    }
    // Gone from the engine: the agent must load them from the tars.
    for (const id of images.map((image) => image.imageId)) await docker.getImage(id).remove({ force: true });
    const commit = randomBytes(16).toString('hex');
    const service = (i: number) => ({ id: i + 1, image_id: i + 1, image: refs[i] as string });
    const manifest = preloadManifestSchema.parse({
      version: 1,
      createdAt: new Date().toISOString(),
      fleet: h.cp.fleet,
      release: { id: 1, commit, version: '1.0.0' },
      target: {
        name: '',
        config: {},
        apps: {
          [h.cp.fleet.uuid]: {
            id: h.cp.fleet.id,
            name: h.cp.fleet.slug,
            releases: { [commit]: { id: 1, services: { main: service(0), side: service(1) } } },
          },
        },
      },
      images,
    });
    await writeFile(join(dir, PRELOAD_MANIFEST_FILE), JSON.stringify(manifest));

    const crashing = spawnAgent(h, 'during:loadImage');
    agents.push(crashing.child);
    const exit = await exitWithin(crashing, 90_000);
    assert.equal(exit.signal, 'SIGKILL', 'the failpoint in the first docker load was reached');
    assert.deepEqual((await readdir(dir)).sort(), ['image-1.tar', 'image-2.tar', PRELOAD_MANIFEST_FILE]);
    const loaded = (tag: string) =>
      docker
        .getImage(tag)
        .inspect()
        .then(
          () => true,
          () => false,
        );
    assert.deepEqual(await Promise.all(tags.map(loaded)), [false, false], 'the kill came before any load completed');

    const again = spawnAgent(h);
    agents.push(again.child);
    await waitFor(
      'the preloaded release to run after the restart',
      async () => {
        const list = await ourContainers(h.namespace);
        return list.length === 2 && list.every((c) => c.State === 'running') ? list.map(serviceOf).sort() : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    await waitFor('the tars to be removed', async () => {
      const left = await readdir(dir);
      return left.length === 1 && left[0] === PRELOAD_MANIFEST_FILE ? true : undefined;
    });
    for (const [i, tag] of tags.entries())
      assert.equal((await docker.getImage(tag).inspect()).Id, images[i]?.imageId, `image ${i + 1} loaded, checked`);
  } finally {
    for (const a of agents) a.kill('SIGKILL');
    await cleanup(h.namespace, [...locals, ...tags]);
    await h.remove();
  }
});
