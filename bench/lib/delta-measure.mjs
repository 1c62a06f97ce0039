// Measures delta algorithms between two local images' uncompressed layers: size, time to encode, time and peak RSS
// to decode. Used by bench/delta-measure.mjs (choosing the algorithm) and bench/delta.mjs (the scenarios).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';

/** `docker save` of `ref` unpacked in `dir`: its config digest and its layers (uncompressed tars) in rootfs order. */
export function savedImage(ref, dir) {
  execFileSync('sh', ['-c', `docker save "$1" | tar -C "$2" -xf -`, 'sh', ref, dir]);
  const [entry] = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(dir, entry.Config), 'utf8'));
  const layers = entry.Layers.map((file, i) => ({
    diffId: config.rootfs.diff_ids[i],
    path: join(dir, file),
    size: statSync(join(dir, file)).size,
  }));
  return { configDigest: `sha256:${sha256File(join(dir, entry.Config))}`, layers };
}

export function sha256File(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Bytes of `path` gzipped at the default level, as `docker push` uploads a layer (what a plain pull downloads). */
export async function gzipSize(path) {
  let size = 0;
  const gzip = createGzip({ level: 6 });
  gzip.on('data', (chunk) => {
    size += chunk.length;
  });
  const done = new Promise((resolve, reject) => {
    gzip.on('end', resolve);
    gzip.on('error', reject);
  });
  createReadStream(path).pipe(gzip);
  await done;
  return size;
}

/** Concatenates files into `out` (the "whole image" stream: layer tars one after another). */
export function concat(paths, out) {
  const fd = openSync(out, 'w');
  try {
    for (const path of paths) writeSync(fd, readFileSync(path));
  } finally {
    closeSync(fd);
  }
  return statSync(out).size;
}

/** Runs a command under /usr/bin/time: wall seconds and peak RSS (MiB) of the child. */
export function timed(command, args) {
  const started = process.hrtime.bigint();
  const result = spawnSync('/usr/bin/time', ['-f', '%M', command, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${result.stderr}`);
  const lines = result.stderr.toString().trim().split('\n');
  return { seconds, peakRssMiB: Number(lines[lines.length - 1]) / 1024 };
}

/** The smallest zstd --long window log covering `bytes` (zstd accepts 10..31 on 64-bit). */
export function windowLog(bytes) {
  return Math.min(31, Math.max(20, Math.ceil(Math.log2(Math.max(bytes, 1)))));
}

export const ALGORITHMS = {
  zstd: {
    encode(ref, target, out) {
      const log = windowLog(statSync(ref).size + statSync(target).size);
      return timed('zstd', ['-q', '-f', '-19', `--long=${log}`, `--patch-from=${ref}`, target, '-o', out]);
    },
    decode(ref, delta, out) {
      return timed('zstd', ['-q', '-f', '-d', '--long=31', `--patch-from=${ref}`, delta, '-o', out]);
    },
  },
  xdelta3: {
    encode(ref, target, out) {
      // -B: source window as large as the reference (capped at xdelta3's 2 GiB), so matches anywhere are found.
      const window = Math.min(2 ** 31 - 1, Math.max(statSync(ref).size, 1 << 20));
      return timed('xdelta3', ['-e', '-f', '-9', '-S', 'lzma', '-B', String(window), '-s', ref, target, out]);
    },
    decode(ref, delta, out) {
      const window = Math.min(2 ** 31 - 1, Math.max(statSync(ref).size, 1 << 20));
      return timed('xdelta3', ['-d', '-f', '-B', String(window), '-s', ref, delta, out]);
    },
  },
};

/**
 * Every algorithm, per layer and over the whole image, for the layers of `to` that `from` lacks (by diffID).
 * Per layer: each new layer against `from`'s layer at the same index (an empty file when `from` has fewer).
 * Whole: all new layers concatenated against all of `from`'s layers concatenated.
 * Every decode is checked byte-identical (sha256) against the target, so no figure comes from a broken delta.
 */
export async function measurePair(from, to, work) {
  const have = new Set(from.layers.map((layer) => layer.diffId));
  const fresh = to.layers.map((layer, index) => ({ ...layer, index })).filter((layer) => !have.has(layer.diffId));
  const empty = join(work, 'empty');
  concat([], empty);
  let plainPullBytes = 0;
  for (const layer of fresh) plainPullBytes += await gzipSize(layer.path);
  const rows = [];
  for (const [name, algorithm] of Object.entries(ALGORITHMS)) {
    // Per layer.
    let bytes = 0;
    let encodeSeconds = 0;
    let decodeSeconds = 0;
    let peakRssMiB = 0;
    for (const layer of fresh) {
      const ref = from.layers[layer.index]?.path ?? empty;
      const delta = join(work, `${name}-layer-${layer.index}.delta`);
      const rebuilt = join(work, `${name}-layer-${layer.index}.tar`);
      encodeSeconds += algorithm.encode(ref, layer.path, delta).seconds;
      const decoded = algorithm.decode(ref, delta, rebuilt);
      decodeSeconds += decoded.seconds;
      peakRssMiB = Math.max(peakRssMiB, decoded.peakRssMiB);
      if (`sha256:${sha256File(rebuilt)}` !== layer.diffId) throw new Error(`${name} per layer: layer mismatch`);
      bytes += statSync(delta).size;
    }
    rows.push({ method: `${name} per layer`, bytes, encodeSeconds, decodeSeconds, peakRssMiB });
    // Whole image.
    const ref = join(work, 'from.whole');
    const target = join(work, 'to.whole');
    concat(
      from.layers.map((layer) => layer.path),
      ref,
    );
    concat(
      fresh.map((layer) => layer.path),
      target,
    );
    const delta = join(work, `${name}-whole.delta`);
    const rebuilt = join(work, `${name}-whole.out`);
    const encoded = algorithm.encode(ref, target, delta);
    const decoded = algorithm.decode(ref, delta, rebuilt);
    if (sha256File(rebuilt) !== sha256File(target)) throw new Error(`${name} whole image: output mismatch`);
    rows.push({
      method: `${name} whole image`,
      bytes: statSync(delta).size,
      encodeSeconds: encoded.seconds,
      decodeSeconds: decoded.seconds,
      peakRssMiB: decoded.peakRssMiB,
    });
  }
  return {
    newLayers: fresh.length,
    newLayerBytes: fresh.reduce((sum, layer) => sum + layer.size, 0),
    fromBytes: from.layers.reduce((sum, layer) => sum + layer.size, 0),
    plainPullBytes,
    rows,
  };
}

export function formatReport(title, result) {
  const mib = (bytes) => (bytes / 1024 / 1024).toFixed(2);
  const lines = [
    `## ${title}`,
    `from image ${mib(result.fromBytes)} MiB uncompressed; ${result.newLayers} new layer(s), ${mib(result.newLayerBytes)} MiB uncompressed`,
    `plain pull (gzip -6 of the new layers): ${result.plainPullBytes} bytes (${mib(result.plainPullBytes)} MiB)`,
    '| method | delta bytes | vs pull | encode s | decode s | decode peak RSS MiB |',
    '|---|---|---|---|---|---|',
  ];
  for (const row of result.rows)
    lines.push(
      `| ${row.method} | ${row.bytes} | ${(result.plainPullBytes / Math.max(row.bytes, 1)).toFixed(1)}x smaller | ${row.encodeSeconds.toFixed(2)} | ${row.decodeSeconds.toFixed(2)} | ${row.peakRssMiB.toFixed(0)} |`,
    );
  return lines.join('\n');
}
