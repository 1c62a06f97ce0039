import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { FlotillaError, PRELOAD_MANIFEST_FILE, preloadManifestSchema } from '@flotilla/protocol';
import type { PreloadImage, PreloadManifest } from '@flotilla/protocol';
import { deltaTag } from '../deltas/delta-tag.js';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { Store } from '../store/store.js';

export interface PreloadDeps {
  /** The preload folder: `<data dir>/preload` unless configured. */
  dir: string;
  engine: Pick<ContainerEngine, 'loadImage' | 'imageId' | 'removeImage'>;
  store: Pick<Store, 'getTarget' | 'setTarget' | 'addKnownImage' | 'getPreloaded' | 'setPreloaded'>;
  log: Logger;
  signal: AbortSignal;
}

export type PreloadOutcome =
  | { status: 'none' }
  /** Loaded by an earlier start; its image files were removed (again, if a crash came before). */
  | { status: 'loaded-before'; commit: string }
  /** `target: false` when the device already had a target, which a preload never replaces. */
  | { status: 'loaded'; commit: string; images: number; target: boolean };

/** The manifest in `dir` and the digest of its bytes (what marks it loaded), or undefined when there is none. */
export async function readPreloadManifest(
  dir: string,
): Promise<{ manifest: PreloadManifest; digest: string } | undefined> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, PRELOAD_MANIFEST_FILE));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FlotillaError('PRELOAD_INVALID', `cannot read the preload manifest: ${(error as Error).message}`);
  }
  return {
    manifest: parsePreloadManifest(bytes),
    digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
  };
}

/** The manifest validated: it comes from a disk image, written by whoever made it. */
export function parsePreloadManifest(bytes: Buffer): PreloadManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new FlotillaError('PRELOAD_INVALID', 'the preload manifest is not JSON');
  }
  const parsed = preloadManifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new FlotillaError(
      'PRELOAD_INVALID',
      `the preload manifest is invalid: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}

/**
 * Loads a preload once, before the first pass: each image tar checked against its digest and `docker load`ed under
 * the load tag the planner takes for its digest reference, the loaded image's ID checked against the manifest, then
 * the manifest's target stored as the device's target (only on a device without one), then the preload marked
 * loaded and its tars removed. The target is stored as from the control plane with no ETag, so the first poll that
 * gets through replaces it with the server's.
 * INVARIANT: the mark is written last, so a start cut short anywhere (kill -9 mid-load) loads again what is missing
 * (an image already loaded with the right ID is skipped) and then marks it.
 */
export async function loadPreload(deps: PreloadDeps): Promise<PreloadOutcome> {
  const found = await readPreloadManifest(deps.dir);
  if (!found) return { status: 'none' };
  const { manifest, digest } = found;
  const commit = manifest.release.commit;
  if (deps.store.getPreloaded() === digest) {
    await removeImageFiles(deps.dir, manifest);
    return { status: 'loaded-before', commit };
  }
  for (const image of manifest.images) await loadImage(deps, image);
  const target = deps.store.getTarget() === undefined;
  if (target) deps.store.setTarget({ device: manifest.target, etag: null, source: 'cloud' });
  else deps.log.warn({ commit }, 'the device already has a target; the preloaded release only adds its images');
  deps.store.setPreloaded(digest);
  await removeImageFiles(deps.dir, manifest);
  return { status: 'loaded', commit, images: manifest.images.length, target };
}

async function loadImage(deps: PreloadDeps, image: PreloadImage): Promise<void> {
  const tag = deltaTag(image.ref) as string; // the schema takes digest references only
  if ((await deps.engine.imageId(tag)) !== image.imageId) {
    const file = join(deps.dir, image.file);
    await checkFile(file, image);
    await deps.engine.loadImage(crashMidLoad(createReadStream(file)), deps.signal);
    const loaded = await deps.engine.imageId(tag);
    if (loaded !== image.imageId) {
      // INVARIANT (deltas/delta-tag.ts): the tag stays only on an image whose ID was checked.
      await deps.engine.removeImage(tag).catch(() => undefined);
      throw new FlotillaError(
        'PRELOAD_INVALID',
        `${image.file} loaded ${loaded ?? 'no image'} under ${tag}, not ${image.imageId}`,
      );
    }
    deps.log.info({ image: image.ref, bytes: image.size }, 'preloaded image loaded');
  }
  deps.store.addKnownImage(image.ref);
}

/**
 * Test-only crash injection, as the executor's: FLOTILLA_AGENT_FAILPOINT=during:loadImage makes the process SIGKILL
 * itself in the middle of the first `docker load`: the first chunk of the tar goes to the engine, the rest is held
 * back, and the process dies with the engine holding part of a tar.
 */
function crashMidLoad(tar: Readable): Readable {
  if (process.env.FLOTILLA_AGENT_FAILPOINT !== 'during:loadImage') return tar;
  let passed = false;
  return tar.pipe(
    new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (passed) return; // never done: the load stalls here until the kill
        passed = true;
        done(null, chunk);
        setTimeout(() => process.kill(process.pid, 'SIGKILL'), 500);
      },
    }),
  );
}

async function checkFile(file: string, image: PreloadImage): Promise<void> {
  const size = await stat(file).then(
    (s) => s.size,
    () => undefined,
  );
  if (size !== image.size)
    throw new FlotillaError(
      'PRELOAD_INVALID',
      `${image.file} is ${size === undefined ? 'missing' : `${size} bytes`}, not ${image.size} bytes`,
    );
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== image.sha256)
    throw new FlotillaError('PRELOAD_INVALID', `${image.file} has digest ${actual}, not ${image.sha256}`);
}

/** The tars are of no use once loaded, and a device's data partition is small. The manifest stays, as the record. */
async function removeImageFiles(dir: string, manifest: PreloadManifest): Promise<void> {
  for (const image of manifest.images) await rm(join(dir, image.file), { force: true });
}
