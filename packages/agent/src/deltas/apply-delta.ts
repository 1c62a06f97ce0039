import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { once } from 'node:events';
import { finished, pipeline } from 'node:stream/promises';
import { DELTA_SOURCE_WINDOW_BYTES, type DeltaDescriptor, FlotillaError } from '@flotilla/protocol';
import { extract, pack } from 'tar-stream';
import type { ContainerEngine } from '../engine/container-engine.js';

const invalid = (message: string) => new FlotillaError('DELTA_INVALID', message);
const hexOf = (digest: string) => digest.slice('sha256:'.length);

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * Reads `docker save` of the base image and keeps, in `dir`, the layers whose sha256 is in `wanted` (delta sources,
 * and layers B shares with A at another position). Every layer passes through a file while it is hashed, since
 * manifest.json (which names them) comes last; layers not wanted are removed at once. Returns the base's diffIDs.
 */
async function baseLayers(
  tar: Readable,
  wanted: ReadonlySet<string>,
  dir: string,
): Promise<{ kept: Map<string, string>; diffIds: string[] }> {
  const kept = new Map<string, string>();
  const configs = new Map<string, string>();
  let manifest: Array<{ Config: string; Layers: string[] }> = [];
  let counter = 0;
  // tar-stream streams are streamx streams: fed by pipe() and read by async iteration, never by node's pipeline().
  const untar = extract();
  tar.on('error', (error) => untar.destroy(error));
  tar.pipe(untar as unknown as NodeJS.WritableStream);
  for await (const entry of untar) {
    const name = entry.header.name;
    if (entry.header.type === 'file' && name.endsWith('/layer.tar')) {
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
      if (name === 'manifest.json') manifest = JSON.parse(text) as typeof manifest;
      else configs.set(name, text);
    } else {
      entry.resume();
    }
  }
  const config = configs.get(manifest[0]?.Config ?? '');
  const diffIds = (JSON.parse(config ?? '{}') as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  return { kept, diffIds };
}

/** Runs xdelta3 on one layer's slice of the delta file; the output's sha256 must be the layer's diffID. */
async function rebuildLayer(
  source: string,
  deltaFile: string,
  layer: DeltaDescriptor['layers'][number],
  out: string,
  signal: AbortSignal,
): Promise<void> {
  const child = spawn('xdelta3', ['-d', '-c', '-B', String(DELTA_SOURCE_WINDOW_BYTES), '-s', source], {
    stdio: ['pipe', 'pipe', 'pipe'],
    signal,
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    if (stderr.length < 2000) stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  const hash = createHash('sha256');
  child.stdout.on('data', (chunk: Buffer) => hash.update(chunk));
  const input =
    layer.length > 0
      ? createReadStream(deltaFile, { start: layer.offset, end: layer.offset + layer.length - 1 })
      : undefined;
  if (!input) child.stdin.end();
  // An early exit of xdelta3 breaks this pipe; its exit status below says why.
  const feeding = input ? pipeline(input, child.stdin).catch(() => undefined) : undefined;
  await Promise.all([pipeline(child.stdout, createWriteStream(out)), feeding]);
  const code = await exited;
  if (code !== 0) throw invalid(`xdelta3 could not apply the delta of ${layer.diffId}: ${stderr.trim()}`);
  const digest = `sha256:${hash.digest('hex')}`;
  if (digest !== layer.diffId) throw invalid(`layer rebuilt from the delta is ${digest}, not ${layer.diffId}`);
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
}

/**
 * Rebuilds image B from the base image and the delta and loads it under `tag`. Every rebuilt layer is checked
 * against B's config diffIDs and the loaded image's ID against B's config digest; any mismatch throws DELTA_INVALID
 * (and the tag, if it was set, is removed), so a wrong image is never left for the planner to find.
 */
export async function applyDelta(input: ApplyDeltaInput): Promise<void> {
  const { delta, workDir, signal } = input;
  if (`sha256:${createHash('sha256').update(delta.config).digest('hex')}` !== delta.configDigest)
    throw invalid('the image config in the delta answer does not match its digest');
  const toDiffIds = (JSON.parse(delta.config) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
  const rebuilt = new Set(delta.layers.map((l) => l.diffId));
  const wanted = new Set<string>([
    ...delta.layers.flatMap((l) => (l.source ? [l.source] : [])),
    ...toDiffIds.filter((d) => !rebuilt.has(d)),
  ]);
  const base = await baseLayers(await input.engine.exportImage(input.baseRef, signal), wanted, workDir);
  const empty = join(workDir, 'empty');
  await writeFile(empty, '');
  const layersDir = join(workDir, 'layers');
  await mkdir(layersDir);
  const files = new Map<string, string>();
  for (const layer of delta.layers) {
    signal.throwIfAborted();
    const source = layer.source ? base.kept.get(layer.source) : empty;
    if (!source) throw invalid(`the base image has no layer ${layer.source}`);
    const out = join(layersDir, `${hexOf(layer.diffId)}.tar`);
    await rebuildLayer(source, input.deltaFile, layer, out, signal);
    files.set(layer.diffId, out);
  }
  // Layers of B on the chain A shares with it are in the engine already: load skips them (checked on moby 20.10).
  let shared = 0;
  while (shared < toDiffIds.length && shared < base.diffIds.length && toDiffIds[shared] === base.diffIds[shared])
    shared += 1;
  const entries: Array<{ name: string; file: string }> = [];
  for (const [index, diffId] of toDiffIds.entries()) {
    if (index < shared) continue;
    const file = files.get(diffId) ?? base.kept.get(diffId);
    if (!file) throw invalid(`layer ${diffId} of the image is neither in the delta nor in the base image`);
    entries.push({ name: `${hexOf(diffId)}/layer.tar`, file });
  }
  const configName = `${hexOf(delta.configDigest)}.json`;
  const manifest = JSON.stringify([
    { Config: configName, RepoTags: [input.tag], Layers: toDiffIds.map((d) => `${hexOf(d)}/layer.tar`) },
  ]);
  const tar = pack();
  const packing = (async () => {
    tar.entry({ name: configName }, delta.config);
    for (const { name, file } of entries) {
      const size = (await stat(file)).size;
      await new Promise<void>((resolve, reject) => {
        const sink = tar.entry({ name, size }, (error) => (error ? reject(error) : resolve()));
        const source = createReadStream(file);
        source.on('error', reject);
        source.pipe(sink as unknown as NodeJS.WritableStream);
      });
    }
    tar.entry({ name: 'manifest.json' }, manifest);
    tar.finalize();
  })();
  await Promise.all([input.engine.loadImage(tar as unknown as Readable, signal), packing]);
  const loaded = await input.engine.imageId(input.tag);
  if (loaded !== delta.configDigest) {
    await input.engine.removeImage(input.tag).catch(() => undefined);
    throw invalid(`the loaded image is ${loaded ?? 'missing'}, not ${delta.configDigest}`);
  }
}

/** Checks a downloaded delta file against its digest; a mismatch removes it (the next try downloads it again). */
export async function verifyDeltaFile(file: string, delta: DeltaDescriptor): Promise<void> {
  const digest = await sha256File(file);
  if (digest === delta.digest) return;
  await rm(file, { force: true });
  throw invalid(`downloaded delta is ${digest}, not ${delta.digest}`);
}
