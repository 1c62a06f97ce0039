import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rm, stat, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { finished, pipeline } from 'node:stream/promises';
import {
  DELTA_SOURCE_WINDOW_BYTES,
  DELTA_MAX_REORDER_RANGES,
  DELTA_ZSTD_MAX_WINDOW_LOG,
  type DeltaDescriptor,
  FlotillaError,
} from '@flotilla/protocol';
import { extract, pack } from 'tar-stream';
import type { ContainerEngine } from '../engine/container-engine.js';
import type { LayerCache } from './layer-cache.js';
import { SaveLayerDepths } from './save-layer-depths.js';

const invalid = (message: string) => new FlotillaError('DELTA_INVALID', message);
const hexOf = (digest: string) => digest.slice('sha256:'.length);

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

/** How many leading layers two images share (their layer chains are equal up to there). */
function sharedPrefix(a: readonly string[], b: readonly string[]): number {
  let shared = 0;
  while (shared < a.length && shared < b.length && a[shared] === b[shared]) shared += 1;
  return shared;
}

/**
 * Reads `docker save` of the base image `baseId` and keeps, in `dir`, the layers `need` names given the base's
 * diffIDs (undefined until its config was read). Every layer passes through a file while it is hashed, since the
 * save names layers by v1 ids, not diffIDs; layers not needed are removed at once. With `order` (the base's diffIDs
 * from the engine), a layer whose place in the chain its v1 json already told (SaveLayerDepths) and that is not
 * needed is skipped unwritten. Stops reading as soon as the diffIDs are known and every needed layer is kept.
 * Returns the base's diffIDs.
 */
async function baseLayers(
  tar: Readable,
  baseId: string,
  need: (baseDiffIds: readonly string[] | undefined) => ReadonlySet<string>,
  dir: string,
  order: readonly string[] | undefined,
): Promise<{ kept: Map<string, string>; diffIds: string[] }> {
  const kept = new Map<string, string>();
  const configs = new Map<string, string>();
  const configName = /^sha256:[0-9a-f]{64}$/.test(baseId) ? `${hexOf(baseId)}.json` : undefined;
  const diffIdsOf = (config: string | undefined) =>
    (JSON.parse(config ?? '{}') as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  let diffIds: string[] | undefined;
  let wanted = need(undefined);
  const learnt = async (ids: string[]) => {
    diffIds = ids;
    wanted = need(ids);
    for (const [digest, file] of kept)
      if (!wanted.has(digest)) {
        kept.delete(digest);
        await rm(file, { force: true });
      }
  };
  if (order && order.length > 0) await learnt([...order]);
  const depths = new SaveLayerDepths();
  let counter = 0;
  // tar-stream streams are streamx streams: fed by pipe() and read by async iteration, never by node's pipeline().
  const untar = extract();
  tar.on('error', (error) => untar.destroy(error));
  tar.pipe(untar as unknown as NodeJS.WritableStream);
  try {
    for await (const entry of untar) {
      const name = entry.header.name;
      const folder = /^([0-9a-f]{64})\/(json|layer\.tar)$/.exec(name);
      const depth = folder?.[2] === 'layer.tar' ? depths.depthOf(folder[1]!) : undefined;
      const known = depth !== undefined && order ? order[depth] : undefined;
      if (entry.header.type === 'file' && folder?.[2] === 'json' && entry.header.size! < 1_000_000) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        depths.note(folder[1]!, Buffer.concat(chunks).toString('utf8'));
      } else if (entry.header.type === 'file' && known !== undefined && !wanted.has(known)) {
        // INVARIANT: skipped only when the chain says which layer this is and it is not needed; a needed one is
        // still hashed below, so a wrong position costs a failed apply (DELTA_INVALID), never a wrong image.
        entry.resume();
      } else if (entry.header.type === 'file' && name.endsWith('/layer.tar')) {
        const file = join(dir, `base-${counter++}.tar`);
        const hash = createHash('sha256');
        const out = createWriteStream(file);
        for await (const chunk of entry) {
          hash.update(chunk as Buffer);
          if (!out.write(chunk)) await once(out, 'drain');
        }
        out.end();
        await finished(out);
        const digest = `sha256:${hash.digest('hex')}`;
        if (wanted.has(digest) && !kept.has(digest)) kept.set(digest, file);
        else await rm(file, { force: true });
      } else if (name === 'manifest.json' || (/^[0-9a-f]{64}\.json$/.test(name) && entry.header.size! < 4_000_000)) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry) chunks.push(chunk as Buffer);
        const text = Buffer.concat(chunks).toString('utf8');
        if (name === configName) await learnt(diffIdsOf(text));
        else if (name !== 'manifest.json') configs.set(name, text);
        else if (diffIds === undefined) {
          const manifest = JSON.parse(text) as Array<{ Config: string }>;
          await learnt(diffIdsOf(configs.get(manifest[0]?.Config ?? '')));
        }
      } else {
        entry.resume();
      }
      if (diffIds !== undefined && [...wanted].every((d) => kept.has(d))) break;
    }
  } finally {
    tar.unpipe(untar as unknown as NodeJS.WritableStream);
    tar.destroy();
  }
  return { kept, diffIds: diffIds ?? [] };
}

/**
 * The decoder of a layer's method. WARNING: zstd's --memory bounds the window it accepts: a frame asking for more
 * fails here instead of growing the device's memory past the budget (DELTA_ZSTD_MAX_WINDOW_LOG).
 */
function decoder(layer: DeltaDescriptor['layers'][number], source: string): [string, string[]] {
  if (layer.method === 'zstd')
    return ['zstd', ['-d', '-q', '-c', `--memory=${2 ** DELTA_ZSTD_MAX_WINDOW_LOG}`, `--patch-from=${source}`]];
  return ['xdelta3', ['-d', '-c', '-B', String(DELTA_SOURCE_WINDOW_BYTES), '-s', source]];
}

/** A tar entry of the load failed with no fault of the delta's: the engine's side closed the tarball. */
class LoadSideClosed extends Error {
  constructor(cause: unknown) {
    super(`the image load stopped reading: ${String(cause)}`, { cause });
  }
}

/** A promise that rejects with the signal's reason once it aborts (never settles otherwise). */
function abortion(signal: AbortSignal): Promise<never> {
  const aborted = new Promise<never>((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
  aborted.catch(() => undefined);
  return aborted;
}

/**
 * Decodes one layer's slice of the delta file into `sink` (a tar entry of the load, sized `layer.size`); the
 * output's sha256 must be the layer's diffID, or this throws and the load is abandoned before its manifest.
 * `aborted` rejects once `signal` aborts (made once per apply: a listener per layer would pile up on the signal).
 * WARNING: pipe() carries the bytes (pumping them by hand cost a fifth of the rebuild's time, bench/delta.mjs), but
 * nothing here waits on the pipe alone: a sink that fails or stops reading (the engine refused the load) would leave
 * it waiting for a drain that never comes, the decoder blocked on its full stdout. So the wait is also for the sink's
 * failure, a too-long output and the abort, and any of them kills the decoder.
 */
async function rebuildLayer(
  source: string,
  deltaFile: string,
  layer: DeltaDescriptor['layers'][number],
  sink: NodeJS.WritableStream,
  sinkDone: Promise<void>,
  signal: AbortSignal,
  aborted: Promise<never>,
  copy?: NodeJS.WritableStream,
): Promise<void> {
  const [command, args] = decoder(layer, source);
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (error) => {
      stderr ||= error.message;
      resolve(null);
    });
    child.on('close', resolve);
  });
  const input =
    layer.length > 0
      ? createReadStream(deltaFile, { start: layer.offset, end: layer.offset + layer.length - 1 })
      : undefined;
  if (!input) child.stdin.end();
  // An early exit of the decoder breaks this pipe; its exit status below says why.
  const feeding = input ? pipeline(input, child.stdin).catch(() => undefined) : undefined;
  const hash = createHash('sha256');
  let written = 0;
  let ended = false;
  let overflowed: (error: Error) => void = () => undefined;
  const overflow = new Promise<never>((_resolve, reject) => {
    overflowed = reject;
  });
  overflow.catch(() => undefined);
  // Counted here, not left to the tar entry: its own size check fails only at the end, the same way as a sink closed
  // by a failed load, and the two must be told apart (the delta's fault, or the engine's).
  child.stdout.on('data', (chunk: Buffer) => {
    written += chunk.length;
    if (written > layer.size)
      overflowed(invalid(`layer ${layer.diffId} rebuilt from the delta is over ${layer.size} bytes`));
    else hash.update(chunk);
  });
  child.stdout.once('end', () => {
    ended = true;
  });
  child.stdout.pipe(sink);
  // A cache copy that fails costs only the cache entry (its commit fails), never the apply: pipe() lets go of a
  // destination that closes.
  if (copy) child.stdout.pipe(copy);
  let failure: unknown;
  let killed = false;
  const kill = () => {
    // A decoder whose output ended is exiting by itself: its status, not a kill, says how it went.
    if (ended || child.exitCode !== null || child.signalCode !== null) return;
    killed = true;
    child.kill('SIGKILL');
  };
  // An abort kills the decoder at once, even one that is busy and not writing.
  signal.addEventListener('abort', kill, { once: true });
  try {
    await Promise.race([sinkDone, overflow, aborted]);
  } catch (error) {
    failure = error;
    kill();
    child.stdout.unpipe();
  } finally {
    signal.removeEventListener('abort', kill);
    input?.destroy();
  }
  const code = await exited;
  await feeding;
  // Stopped from outside (the load failed, the agent stops): that reason, not this layer's, says why.
  if (failure !== undefined && signal.aborted && failure === signal.reason) throw failure;
  // The decoder's own failure says why; a short output is then only its consequence.
  if (code !== 0 && !killed) throw invalid(`${command} could not apply the delta of ${layer.diffId}: ${stderr.trim()}`);
  if (failure instanceof FlotillaError) throw failure;
  // Killed because the tar entry failed with no fault found in the delta: the tarball was closed on the engine's side.
  if (failure !== undefined && killed) throw new LoadSideClosed(failure);
  if (written !== layer.size)
    throw invalid(`layer ${layer.diffId} rebuilt from the delta is ${written} bytes, not ${layer.size}`);
  if (failure !== undefined) throw new LoadSideClosed(failure);
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== layer.diffId) throw invalid(`layer rebuilt from the delta is ${digest}, not ${layer.diffId}`);
}

const offsetSchema = z.number().int().nonnegative();
const rangesSchema = z.array(
  z.union([
    z.tuple([offsetSchema, z.number().int().positive()]),
    z.tuple([offsetSchema, z.number().int().positive(), z.number().int().positive()]),
  ]),
);

/**
 * Builds a layer's reordered source (DeltaLayer.reorder): A's layer byte ranges, listed gzip-compressed in the delta
 * file, concatenated into `out`. Every range must lie inside A's layer: a bad list is DELTA_INVALID, never a read of
 * something else.
 */
async function reorderedSource(
  sources: readonly string[],
  deltaFile: string,
  reorder: NonNullable<DeltaDescriptor['layers'][number]['reorder']>,
  out: string,
): Promise<string> {
  const handle = await open(deltaFile, 'r');
  const packed = Buffer.alloc(reorder.length);
  try {
    await handle.read(packed, 0, reorder.length, reorder.offset);
  } finally {
    await handle.close();
  }
  let ranges: z.infer<typeof rangesSchema>;
  try {
    ranges = rangesSchema.parse(JSON.parse(gunzipSync(packed, { maxOutputLength: 64 * 1024 * 1024 }).toString()));
  } catch {
    throw invalid('the reordering list of a layer delta does not parse');
  }
  const sizes = await Promise.all(sources.map(async (file) => (await stat(file)).size));
  const outside = ([start, length, file = 0]: (typeof ranges)[number]) =>
    file >= sources.length || start + length > sizes[file]!;
  if (ranges.length > DELTA_MAX_REORDER_RANGES || ranges.some(outside))
    throw invalid('the reordering list of a layer delta names bytes outside the base layers');
  const handles = await Promise.all(sources.map((file) => open(file, 'r')));
  const sink = await open(out, 'w');
  const buffer = Buffer.alloc(1024 * 1024);
  try {
    for (const [start, length, file = 0] of ranges) {
      // WARNING: plain reads and writes, not a pipeline per range: thousands of ranges leaked listeners on the sink.
      for (let done = 0; done < length; ) {
        const { bytesRead } = await handles[file]!.read(
          buffer,
          0,
          Math.min(buffer.length, length - done),
          start + done,
        );
        if (bytesRead === 0) throw invalid('a base layer is shorter than its reordering list says');
        await sink.write(buffer, 0, bytesRead);
        done += bytesRead;
      }
    }
  } finally {
    await Promise.all([...handles, sink].map((h) => h.close()));
  }
  return out;
}

/** Where the base layers an apply needed came from. */
export interface BaseSources {
  fromCache: number;
  fromSave: number;
}

export interface ApplyDeltaInput {
  engine: ContainerEngine;
  /** The local image the delta was computed from (engine image id). */
  baseRef: string;
  delta: DeltaDescriptor;
  /** The whole delta file, its sha256 already checked. */
  deltaFile: string;
  /** Empty folder for this apply; the caller removes it. */
  workDir: string;
  /** The tag B is loaded under (deltas/delta-tag.ts). */
  tag: string;
  signal: AbortSignal;
  /** Base layers are read here first (docker save only for the rest); rebuilt layers are kept here. */
  cache?: LayerCache | undefined;
  /** False: the rebuilt layers are not kept in the cache (the disk has no room for that copy). Default true. */
  keepRebuilt?: boolean;
  /** Told as each phase ends, for the bench's breakdown of an apply (bench/delta.mjs). */
  onPhase?: (phase: 'base-read' | 'loaded', detail?: BaseSources) => void;
}

/**
 * Rebuilds image B from the base image and the delta and loads it under `tag`. Every rebuilt layer is checked
 * against B's config diffIDs and the loaded image's ID against B's config digest; any mismatch throws DELTA_INVALID
 * (and the tag, if it was set, is removed), so a wrong image is never left for the planner to find. Says how many
 * base layers came from the cache and from `docker save`.
 */
export async function applyDelta(input: ApplyDeltaInput): Promise<BaseSources> {
  const { delta, workDir, signal } = input;
  if (`sha256:${createHash('sha256').update(delta.config).digest('hex')}` !== delta.configDigest)
    throw invalid('the image config in the delta answer does not match its digest');
  const toDiffIds = (JSON.parse(delta.config) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  const byDiffId = new Map(delta.layers.map((l) => [l.diffId, l]));
  const sources = delta.layers.flatMap((l) => [...(l.source ? [l.source] : []), ...l.extraSources]);
  // Layers of B on the chain A shares with it are in the engine already: load skips them (checked on moby 20.10),
  // so they are neither kept from the base nor sent.
  const need = (baseDiffIds: readonly string[] | undefined) =>
    new Set([
      ...sources,
      ...toDiffIds.slice(baseDiffIds ? sharedPrefix(toDiffIds, baseDiffIds) : 0).filter((d) => !byDiffId.has(d)),
    ]);
  const baseId = (await input.engine.imageId(input.baseRef)) ?? input.baseRef;
  const order = await input.engine.imageDiffIds(input.baseRef);
  const base = await readBase(input, baseId, need, order);
  const shared = sharedPrefix(toDiffIds, base.diffIds);
  for (const diffId of toDiffIds.slice(shared))
    if (!byDiffId.has(diffId) && !base.kept.has(diffId))
      throw invalid(`layer ${diffId} of the image is neither in the delta nor in the base image`);
  for (const source of sources) if (!base.kept.has(source)) throw invalid(`the base image has no layer ${source}`);
  const empty = join(workDir, 'empty');
  await writeFile(empty, '');
  const configName = `${hexOf(delta.configDigest)}.json`;
  const manifest = JSON.stringify([
    { Config: configName, RepoTags: [input.tag], Layers: toDiffIds.map((d) => `${hexOf(d)}/layer.tar`) },
  ]);
  // INVARIANT: manifest.json goes last, after every rebuilt layer's sha256 was checked: a layer that fails its
  // check abandons the tarball before it, so the engine never tags an image from wrong bytes.
  const tar = pack();
  // WARNING: the engine's request reads the tarball through pipe(), which does not forward errors: without this
  // listener a failed layer (its entry's size mismatch) would be an uncaught exception. The packing promise and the
  // load carry every error.
  tar.on('error', () => undefined);
  const entry = (name: string, size: number) => {
    let sink: NodeJS.WritableStream | undefined;
    const done = new Promise<void>((resolve, reject) => {
      sink = tar.entry({ name, size }, (error) =>
        error ? reject(error) : resolve(),
      ) as unknown as NodeJS.WritableStream;
    });
    // The entry's callback carries its error (a size mismatch); the stream emits it too, to nobody.
    sink!.on('error', () => undefined);
    return { sink: sink!, done };
  };
  // Halted by whichever of the packing and the load fails first, so the other stops too instead of waiting on it:
  // a refused load leaves the tarball unread (the packing would wait for it to drain), a failed packing leaves the
  // engine's request waiting for bytes that never come.
  const halt = new AbortController();
  const halted = AbortSignal.any([signal, halt.signal]);
  const stopped = abortion(halted);
  const packing = (async () => {
    tar.entry({ name: configName }, delta.config);
    for (const diffId of toDiffIds.slice(shared)) {
      halted.throwIfAborted();
      const name = `${hexOf(diffId)}/layer.tar`;
      const layer = byDiffId.get(diffId);
      if (!layer) {
        const file = base.kept.get(diffId)!;
        const { sink, done } = entry(name, (await stat(file)).size);
        const source = createReadStream(file);
        let unreadable = false;
        source.on('error', () => {
          unreadable = true;
        });
        try {
          await Promise.race([Promise.all([done, pipeline(source, sink)]), stopped]);
        } catch (error) {
          throw unreadable || halted.aborted ? error : new LoadSideClosed(error);
        } finally {
          source.destroy();
        }
        continue;
      }
      const source = layer.source ? base.kept.get(layer.source)! : empty;
      const reordered = join(workDir, 'source-reordered.tar');
      const files = [source, ...layer.extraSources.map((d) => base.kept.get(d)!)];
      const from = layer.reorder ? await reorderedSource(files, input.deltaFile, layer.reorder, reordered) : source;
      const { sink, done } = entry(name, layer.size);
      const copy = input.keepRebuilt === false ? undefined : await input.cache?.writer(diffId);
      try {
        await rebuildLayer(from, input.deltaFile, layer, sink, done, halted, stopped, copy?.stream);
      } catch (error) {
        await copy?.abort();
        throw error;
      }
      // Checked against its diffID above: kept for the next delta (a cache failure costs only that).
      await copy?.commit().catch(() => copy.abort());
      if (from !== source) await rm(from, { force: true });
    }
    tar.entry({ name: 'manifest.json' }, manifest);
    tar.finalize();
  })().catch((error: unknown) => {
    halt.abort(error);
    tar.destroy(error as Error);
    throw error;
  });
  const loading = input.engine.loadImage(tar as unknown as Readable, halted).catch((error: unknown) => {
    halt.abort(error);
    tar.destroy(error as Error);
    throw error;
  });
  const [loaded, packed] = await Promise.allSettled([loading, packing]);
  // The outer abort says why when it came; then the packing's own error (DELTA_INVALID, a full disk), the load's
  // being only its consequence; then the load's, when the packing failed only because the load had.
  signal.throwIfAborted();
  if (packed.status === 'rejected' && !(packed.reason instanceof LoadSideClosed)) throw packed.reason;
  if (loaded.status === 'rejected') throw loaded.reason;
  if (packed.status === 'rejected') throw packed.reason;
  input.onPhase?.('loaded');
  const loadedId = await input.engine.imageId(input.tag);
  if (loadedId !== delta.configDigest) {
    await input.engine.removeImage(input.tag).catch(() => undefined);
    throw invalid(`the loaded image is ${loadedId ?? 'missing'}, not ${delta.configDigest}`);
  }
  // The base layers `docker save` gave (hashed to their diffIDs as they were read): kept, so the next delta from this
  // base or from B (which shares them) reads the cache instead (an image the engine pulled, not the agent).
  if (input.keepRebuilt !== false)
    for (const [diffId, file] of base.fromSave) await input.cache?.storeTar(diffId, file).catch(() => undefined);
  return base.sources;
}

/**
 * The base's layers `need` names, and its diffIDs: from the cache where it has them, and only for the rest from
 * `docker save`, which is not read at all when the cache had every one.
 */
async function readBase(
  input: ApplyDeltaInput,
  baseId: string,
  need: (baseDiffIds: readonly string[] | undefined) => ReadonlySet<string>,
  order: readonly string[] | undefined,
): Promise<{ kept: Map<string, string>; fromSave: Map<string, string>; diffIds: string[]; sources: BaseSources }> {
  const cached = new Map<string, string>();
  if (input.cache && order && order.length > 0) {
    const cache = input.cache;
    // All at once: each is a gunzip (zlib's thread pool) and a write, so they overlap on a multi-core device.
    await Promise.all(
      [...need(order)].map(async (diffId, index) => {
        const file = join(input.workDir, `cached-${index}.tar`);
        if (await cache.extract(diffId, file, input.signal)) cached.set(diffId, file);
        else await rm(file, { force: true });
      }),
    );
    if ([...need(order)].every((d) => cached.has(d))) {
      const sources = { fromCache: cached.size, fromSave: 0 };
      input.onPhase?.('base-read', sources);
      return { kept: cached, fromSave: new Map(), diffIds: [...order], sources };
    }
  }
  const rest = (ids: readonly string[] | undefined) => new Set([...need(ids)].filter((d) => !cached.has(d)));
  const tar = await input.engine.exportImage(input.baseRef, input.signal);
  const saved = await baseLayers(tar, baseId, rest, input.workDir, order);
  const sources = { fromCache: cached.size, fromSave: saved.kept.size };
  input.onPhase?.('base-read', sources);
  return { kept: new Map([...cached, ...saved.kept]), fromSave: saved.kept, diffIds: saved.diffIds, sources };
}

/** Checks a downloaded delta file against its digest; a mismatch removes it (the next try downloads it again). */
export async function verifyDeltaFile(file: string, delta: Pick<DeltaDescriptor, 'digest'>): Promise<void> {
  const digest = await sha256File(file);
  if (digest === delta.digest) return;
  await rm(file, { force: true });
  throw invalid(`downloaded delta is ${digest}, not ${delta.digest}`);
}
