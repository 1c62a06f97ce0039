import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { DELTA_FORMAT, type DeltaDescriptor } from '@flotilla/protocol';
import { extract, pack } from 'tar-stream';
import { MemoryEngine } from '../test-support/memory-engine.js';
import { applyDelta } from './apply-delta.js';
import { LayerCache } from './layer-cache.js';

// applyDelta against an engine that misbehaves the ways a real one does (refuses a load partway, stops reading);
// the decoder is the real xdelta3. Each case must end promptly: a hang here is the bug these tests guard.

const digestOf = (bytes: Buffer | string) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const hexOf = (digest: string) => digest.slice('sha256:'.length);
const LAYER_BYTES = 8 * 1024 * 1024; // far past every pipe's and stream's buffer, so backpressure is reached

/** A `docker save` of a base image with no layers (a delta whose layers have an empty source needs none). */
async function emptySave(configText: string): Promise<Buffer> {
  const tar = pack();
  tar.entry({ name: `${hexOf(digestOf(configText))}.json` }, configText);
  tar.entry({ name: 'manifest.json' }, JSON.stringify([{ Config: `${hexOf(digestOf(configText))}.json`, Layers: [] }]));
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

class ScriptedEngine extends MemoryEngine {
  loaded: string | undefined;
  constructor(
    private readonly base: { id: string; save: Buffer },
    private readonly load: (tar: Readable, signal: AbortSignal) => Promise<string | undefined>,
  ) {
    super();
  }
  override async imageId(ref?: string): Promise<string | undefined> {
    return ref === 'base' ? this.base.id : this.loaded;
  }
  override async exportImage(): Promise<never> {
    return Readable.from([this.base.save]) as never;
  }
  override async loadImage(tar: Readable, signal: AbortSignal): Promise<void> {
    this.loaded = await this.load(tar, signal);
  }
}

/** True while an xdelta3 reading `file` still runs (a decoder left behind by a failed apply). */
const decoderRunning = (file: string) => {
  try {
    execFileSync('pgrep', ['-f', file]);
    return true;
  } catch {
    return false;
  }
};

describe('applyDelta when the engine misbehaves', { timeout: 60_000 }, () => {
  let dir: string;
  let delta: DeltaDescriptor;
  let deltaFile: string;
  let layer: Buffer;
  let base: { id: string; save: Buffer };
  let runs = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'flotilla-apply-delta-'));
    layer = randomBytes(LAYER_BYTES);
    const diffId = digestOf(layer);
    await writeFile(join(dir, 'empty'), '');
    await writeFile(join(dir, 'layer.tar'), layer);
    deltaFile = join(dir, 'delta');
    execFileSync('xdelta3', ['-e', '-f', '-s', join(dir, 'empty'), join(dir, 'layer.tar'), deltaFile]);
    const { size } = await stat(deltaFile);
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: [diffId] },
    });
    delta = {
      format: DELTA_FORMAT,
      digest: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
      size,
      path: '/d',
      config,
      configDigest: digestOf(config),
      layers: [
        {
          diffId,
          size: LAYER_BYTES,
          source: null,
          method: 'xdelta3',
          reorder: null,
          extraSources: [],
          offset: 0,
          length: size,
        },
      ],
      pullBytes: LAYER_BYTES,
    };
    const baseConfig = JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } });
    base = { id: digestOf(baseConfig), save: await emptySave(baseConfig) };
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const apply = async (engine: ScriptedEngine, signal: AbortSignal, cache?: LayerCache, keepRebuilt?: boolean) => {
    const workDir = join(dir, `work-${runs++}`);
    await mkdir(workDir);
    return applyDelta({
      engine,
      baseRef: 'base',
      delta,
      deltaFile,
      workDir,
      tag: 'b:delta',
      signal,
      cache,
      keepRebuilt,
    });
  };
  /** An engine that reads the whole tarball and loads B: the tarball's entry names, in order, once it has. */
  const loadingEngine = (names: string[] = []) =>
    new ScriptedEngine(base, async (tar) => {
      const untar = extract();
      tar.pipe(untar as unknown as NodeJS.WritableStream);
      for await (const entry of untar) {
        names.push(entry.header.name);
        const hash = createHash('sha256');
        for await (const chunk of entry) hash.update(chunk as Buffer);
        if (entry.header.name.endsWith('/layer.tar'))
          assert.equal(`sha256:${hash.digest('hex')}`, delta.layers[0]!.diffId);
      }
      return delta.configDigest;
    });

  it('loads the rebuilt layer, its config and the manifest last, and keeps the layer in the cache', async () => {
    const cache = new LayerCache(join(dir, 'cache'), 64 * 1024 * 1024);
    const names: string[] = [];
    const engine = loadingEngine(names);
    await apply(engine, new AbortController().signal, cache);
    assert.deepEqual(names, [
      `${hexOf(delta.configDigest)}.json`,
      `${hexOf(delta.layers[0]!.diffId)}/layer.tar`,
      'manifest.json',
    ]);
    assert.equal(
      await cache.extract(delta.layers[0]!.diffId, join(dir, 'extracted'), new AbortController().signal),
      true,
    );
  });

  it('with keepRebuilt false (a disk short for that copy) the cache keeps nothing of the apply', async () => {
    const cache = new LayerCache(join(dir, 'cache-not-kept'), 64 * 1024 * 1024);
    await apply(loadingEngine(), new AbortController().signal, cache, false);
    assert.equal(await cache.bytes(), 0);
  });

  it('an engine that refuses the load partway fails the apply at once, with its error, and stops the decoder', async () => {
    const engine = new ScriptedEngine(base, async (tar) => {
      let read = 0;
      for await (const chunk of tar) {
        read += (chunk as Buffer).length;
        if (read > 1024 * 1024) break; // the rest of the tarball is never read, as when dockerd answers early
      }
      throw new Error('write /var/lib/docker/tmp/docker-import: no space left on device');
    });
    const started = Date.now();
    await assert.rejects(apply(engine, new AbortController().signal), /no space left on device/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(decoderRunning(deltaFile), false, 'no xdelta3 is left running');
  });

  it('an abort while the engine reads nothing ends the apply at once (the agent stopping mid-update)', async () => {
    const engine = new ScriptedEngine(
      base,
      (_tar, signal) =>
        new Promise((_resolve, reject) =>
          signal.addEventListener('abort', () => reject(signal.reason), { once: true }),
        ),
    );
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('agent stopping')), 300);
    const started = Date.now();
    await assert.rejects(apply(engine, controller.signal), /agent stopping/);
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    assert.equal(decoderRunning(deltaFile), false, 'no xdelta3 is left running');
  });

  it('a layer longer than the delta says fails as DELTA_INVALID, and nothing is tagged', async () => {
    const engine = new ScriptedEngine(base, async (tar) => {
      for await (const _chunk of tar);
      throw new Error('unexpected EOF');
    });
    const short = { ...delta, layers: [{ ...delta.layers[0]!, size: LAYER_BYTES - 512 }] };
    const workDir = join(dir, `work-${runs++}`);
    await mkdir(workDir);
    await assert.rejects(
      applyDelta({
        engine,
        baseRef: 'base',
        delta: short,
        deltaFile,
        workDir,
        tag: 'b:delta',
        signal: new AbortController().signal,
      }),
      (error: Error & { code?: string }) => error.code === 'DELTA_INVALID',
    );
    assert.equal(engine.loaded, undefined);
  });
});
