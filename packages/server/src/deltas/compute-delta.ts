import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { appendFile, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, gzipSync } from 'node:zlib';
import {
  DELTA_SOURCE_WINDOW_BYTES,
  DELTA_ZSTD_MAX_WINDOW_LOG,
  type DeltaLayer,
  type DeltaMethod,
} from '@flotilla/protocol';
import type { RegistryStorage } from '../registry/storage.js';
import type { DeltaStore, StoredPair } from './delta-store.js';
import { reorderRanges, type SourceRange } from './tar-reorder.js';

const run = promisify(execFile);

/** Why no delta can be made; recorded as a FailedPair so it is not tried again for every device. */
export class DeltaImpossible extends Error {}

interface ImageManifest {
  config: { digest: string };
  layers: Array<{ digest: string; size: number; mediaType?: string }>;
}

async function readManifest(storage: RegistryStorage, hex: string): Promise<ImageManifest> {
  let body: Partial<ImageManifest> & { manifests?: unknown };
  try {
    body = JSON.parse(await readFile(storage.blobPath(hex), 'utf8')) as typeof body;
  } catch {
    throw new DeltaImpossible(`manifest sha256:${hex} is not in the registry`);
  }
  if (body.manifests) throw new DeltaImpossible('image indexes (multi-platform manifests) have no deltas yet');
  if (!body.config?.digest || !Array.isArray(body.layers)) throw new DeltaImpossible('not an image manifest');
  return body as ImageManifest;
}

const hexOf = (digest: string) => {
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) throw new DeltaImpossible(`unsupported digest ${digest}`);
  return digest.slice(7);
};

/** Passes bytes through, failing once more than `limit` went by (bounds the server's temp disk per computation). */
function capped(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen > limit) done(new DeltaImpossible(`layers larger than the delta size limit (${limit} bytes)`));
      else done(null, chunk);
    },
  });
}

function decompressor(mediaType: string | undefined): Transform | undefined {
  if (!mediaType || mediaType.endsWith('gzip')) return createGunzip();
  if (mediaType.endsWith('.tar') || mediaType.endsWith('tar')) return undefined;
  throw new DeltaImpossible(`layer media type ${mediaType} has no deltas yet`);
}

/**
 * Writes a layer's uncompressed tar to `out` and checks its sha256 against `diffId`, so a delta is never encoded
 * from (or to) bytes other than the ones the image config names.
 */
async function unpackLayer(
  storage: RegistryStorage,
  layer: ImageManifest['layers'][number],
  diffId: string,
  out: string,
  limit: number,
): Promise<number> {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  const source: Readable = storage.readBlob(hexOf(layer.digest));
  const unzip = decompressor(layer.mediaType);
  await pipeline([source, ...(unzip ? [unzip] : []), capped(limit), hashing, createWriteStream(out)]);
  if (`sha256:${hash.digest('hex')}` !== diffId)
    throw new DeltaImpossible(`layer ${layer.digest} does not unpack to its diffID ${diffId}`);
  return (await stat(out)).size;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}

export interface ComputeLimits {
  /** Largest uncompressed layer (source or target) a delta is computed for. */
  maxLayerBytes: number;
  /**
   * zstd level of the second try (server deltas/README.md has the measurements behind the default); 0: xdelta3 only.
   */
  zstdLevel?: number;
}

/** zstd level used when none is configured: see the README's table (size vs time on the scenario 2 base layer). */
export const DEFAULT_ZSTD_LEVEL = 9;

/**
 * xdelta3 results at most this share of the layer are kept without trying zstd: xdelta3 is 10-40x faster and smaller
 * when the changes stay in place (scenario 1: 9 KB for a 128 MiB layer); zstd wins when content moved far.
 */
const ZSTD_TRY_RATIO = 0.01;

/**
 * WARNING: zstd 1.5.4 (Debian bookworm) reads the --patch-from source into memory and copies it into its decoder,
 * and holds an output window up to the layer's size: decoding peaked at 337 MB RSS for a 164 MiB source (measured,
 * deltas/README.md). Layers whose 2 x source + target exceed this are left to xdelta3, so the device stays under the
 * issue's 256 MB budget.
 */
const ZSTD_DECODE_BUDGET_BYTES = 200 * 1024 * 1024;

/** Writes the `[start, length]` ranges of `file`, concatenated, to `out` (the reordered source). */
async function writeRanges(files: readonly string[], ranges: SourceRange[], out: string): Promise<number> {
  const handles = await Promise.all(files.map((file) => open(file, 'r')));
  const sink = await open(out, 'w');
  const buffer = Buffer.alloc(1024 * 1024);
  let total = 0;
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
        if (bytesRead === 0) throw new Error(`${files[file]} is shorter than its ranges`);
        await sink.write(buffer, 0, bytesRead);
        done += bytesRead;
      }
      total += length;
    }
  } finally {
    await Promise.all([...handles, sink].map((h) => h.close()));
  }
  return total;
}

/** Largest xdelta3 source window the server encodes with: its encoder then peaks near 800 MB RSS (README). */
const ENCODE_WINDOW_MAX_BYTES = 256 * 1024 * 1024;

/**
 * The encoder's source window for a source of `sourceSize` bytes: the whole source when it fits the cap (a 134 MB
 * python layer just over the device's 128 MiB window gave 1.9 MB with that window, 23 KB with the whole source in
 * it), never less than the device's window. The device decodes with its own DELTA_SOURCE_WINDOW_BYTES whatever this is.
 */
export function encodeWindow(sourceSize: number): number {
  const mib = 1024 * 1024;
  const whole = (Math.ceil(sourceSize / mib) + 1) * mib;
  return Math.min(ENCODE_WINDOW_MAX_BYTES, Math.max(DELTA_SOURCE_WINDOW_BYTES, whole));
}

/** Encodes `target` against `source` (`sourceSize` bytes) with xdelta3 into `out`. */
export async function xdelta3Encode(
  source: string,
  sourceSize: number,
  target: string,
  out: string,
  signal?: AbortSignal,
): Promise<void> {
  // -A: no application header (it would carry temp file names, so equal inputs gave unequal deltas).
  const window = String(encodeWindow(sourceSize));
  await run('xdelta3', ['-e', '-f', '-9', '-S', 'lzma', '-A', '-B', window, '-s', source, target, out], { signal });
}

/** Encodes `target` against `source` with zstd --patch-from into `out` (no checksum: the diffID check covers it). */
async function zstdEncode(
  source: string,
  target: string,
  out: string,
  level: number,
  signal?: AbortSignal,
): Promise<void> {
  await run(
    'zstd',
    [
      '-q',
      '-f',
      `-${level}`,
      ...(level > 19 ? ['--ultra'] : []),
      `--long=${DELTA_ZSTD_MAX_WINDOW_LOG}`,
      '--no-check',
      `--patch-from=${source}`,
      target,
      '-o',
      out,
    ],
    { signal },
  );
}

/**
 * One layer's delta: xdelta3 first; zstd too when xdelta3's result is large for the layer and both files fit in
 * zstd's window (the device's memory bound); the smaller is kept in `out`.
 */
async function encodeLayer(
  source: string,
  sourceSize: number,
  target: string,
  targetSize: number,
  out: string,
  limits: ComputeLimits,
  signal?: AbortSignal,
): Promise<{ method: DeltaMethod; length: number }> {
  await xdelta3Encode(source, sourceSize, target, out, signal);
  const xdelta3Length = (await stat(out)).size;
  const level = limits.zstdLevel ?? DEFAULT_ZSTD_LEVEL;
  const window = 2 ** DELTA_ZSTD_MAX_WINDOW_LOG;
  if (
    level <= 0 ||
    xdelta3Length <= targetSize * ZSTD_TRY_RATIO ||
    Math.max(sourceSize, targetSize) > window ||
    2 * sourceSize + targetSize > ZSTD_DECODE_BUDGET_BYTES
  )
    return { method: 'xdelta3', length: xdelta3Length };
  const zstdOut = `${out}.zst`;
  try {
    await zstdEncode(source, target, zstdOut, level, signal);
  } catch (error) {
    if (signal?.aborted) throw error;
    // zstd missing or failing on this pair: xdelta3's result is a valid delta all the same.
    return { method: 'xdelta3', length: xdelta3Length };
  }
  const zstdLength = (await stat(zstdOut)).size;
  if (zstdLength >= xdelta3Length) {
    await rm(zstdOut);
    return { method: 'xdelta3', length: xdelta3Length };
  }
  await rename(zstdOut, out);
  return { method: 'zstd', length: zstdLength };
}

/**
 * The delta from image A (manifest `fromHex`) to image B (`toHex`): for each layer of B whose diffID A lacks, an
 * xdelta3 or zstd encoding (encodeLayer) against A's layer at the same index (an empty source past A's last layer), concatenated into one
 * file. Stored through `store` (atomic); the pair records a DeltaImpossible reason instead when none can be made.
 */
export async function computeDelta(
  storage: RegistryStorage,
  store: DeltaStore,
  fromHex: string,
  toHex: string,
  limits: ComputeLimits,
  signal?: AbortSignal,
): Promise<StoredPair> {
  const work = await store.workDir();
  try {
    const from = await readManifest(storage, fromHex);
    const to = await readManifest(storage, toHex);
    const fromConfig = JSON.parse(await readFile(storage.blobPath(hexOf(from.config.digest)), 'utf8')) as {
      rootfs?: { diff_ids?: string[] };
    };
    const toConfigText = await readFile(storage.blobPath(hexOf(to.config.digest)), 'utf8');
    const toConfig = JSON.parse(toConfigText) as { rootfs?: { diff_ids?: string[] } };
    const fromDiffIds = fromConfig.rootfs?.diff_ids ?? [];
    const toDiffIds = toConfig.rootfs?.diff_ids ?? [];
    if (fromDiffIds.length !== from.layers.length || toDiffIds.length !== to.layers.length)
      throw new DeltaImpossible('an image config does not name one diffID per layer');
    const have = new Set(fromDiffIds);
    const empty = join(work, 'empty');
    await writeFile(empty, '');
    const deltaFile = join(work, 'delta');
    await writeFile(deltaFile, '');
    const layers: DeltaLayer[] = [];
    let offset = 0;
    let pullBytes = 0;
    // A's layers, each unpacked once when a layer of B needs it: a layer's entries may come from any of them.
    const unpacked = new Map<number, { file: string; size: number }>();
    const fromLayer = async (index: number) => {
      let found = unpacked.get(index);
      if (!found) {
        const file = join(work, `source-${index}.tar`);
        const size = await unpackLayer(storage, from.layers[index]!, fromDiffIds[index]!, file, limits.maxLayerBytes);
        found = { file, size };
        unpacked.set(index, found);
      }
      return found;
    };
    for (const [index, diffId] of toDiffIds.entries()) {
      if (have.has(diffId)) continue;
      signal?.throwIfAborted();
      const hasSource = index < from.layers.length;
      const { file: source, size: sourceSize } = hasSource ? await fromLayer(index) : { file: empty, size: 0 };
      const target = join(work, 'target.tar');
      const size = await unpackLayer(storage, to.layers[index]!, diffId, target, limits.maxLayerBytes);
      // The same-index layer first, then A's others from the top: the topmost copy of a file is the one A runs.
      const others = [...from.layers.keys()].filter((i) => i !== index).reverse();
      const candidates = [source, ...(await Promise.all(others.map(async (i) => (await fromLayer(i)).file)))];
      const found = await reorderRanges(candidates, target);
      let encodeFrom = source;
      let encodeFromSize = sourceSize;
      let reorder: DeltaLayer['reorder'] = null;
      const extraSources: string[] = [];
      if (found) {
        // Renumber: only the layers the ranges use travel in extraSources (the device keeps those from docker save).
        const renumber = new Map<number, number>([[0, 0]]);
        for (const used of found.used.filter((u) => u > 0).sort((a, b) => a - b)) {
          extraSources.push(fromDiffIds[others[used - 1]!]!);
          renumber.set(used, extraSources.length);
        }
        const ranges = found.ranges.map((r): SourceRange => (r.length === 2 ? r : [r[0], r[1], renumber.get(r[2])!]));
        const files = [
          source,
          ...found.used
            .filter((u) => u > 0)
            .sort((a, b) => a - b)
            .map((u) => candidates[u]!),
        ];
        encodeFrom = join(work, 'source-reordered.tar');
        encodeFromSize = await writeRanges(files, ranges, encodeFrom);
        const list = gzipSync(JSON.stringify(ranges));
        await appendFile(deltaFile, list);
        reorder = { offset, length: list.length };
        offset += list.length;
      }
      const encoded = join(work, 'layer.delta');
      const { method, length } = await encodeLayer(encodeFrom, encodeFromSize, target, size, encoded, limits, signal);
      await pipeline(createReadStream(encoded), createWriteStream(deltaFile, { flags: 'a' }));
      const sourceId = hasSource ? fromDiffIds[index]! : null;
      layers.push({ diffId, size, source: sourceId, method, reorder, extraSources, offset, length });
      offset += length;
      pullBytes += to.layers[index]!.size;
      await Promise.all([rm(encoded), rm(target), encodeFrom === source ? undefined : rm(encodeFrom)]);
    }
    const pair: StoredPair = {
      ok: true,
      digest: await sha256File(deltaFile),
      size: offset,
      config: toConfigText,
      configDigest: to.config.digest,
      layers,
      pullBytes,
    };
    await store.putPair(fromHex, toHex, pair, deltaFile);
    return pair;
  } catch (error) {
    if (!(error instanceof DeltaImpossible)) throw error;
    const pair: StoredPair = { ok: false, reason: error.message };
    await store.putPair(fromHex, toHex, pair);
    return pair;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Whether xdelta3 can be run here (the server answers DELTA_UNAVAILABLE without it, and devices pull). */
export async function xdelta3Available(): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn('xdelta3', ['-V'], { stdio: 'ignore' });
    child.on('error', () => resolve(false));
    child.on('exit', (code) => resolve(code === 0));
  });
}
