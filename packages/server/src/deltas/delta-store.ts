import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { DeltaLayer } from '@flotilla/protocol';

/** A computed pair: the delta's file and what the device needs to use it (DeltaDescriptor without its path). */
export interface ReadyPair {
  ok: true;
  digest: string;
  size: number;
  config: string;
  configDigest: string;
  layers: DeltaLayer[];
  pullBytes: number;
}

/** A pair no delta can be made for (too large, unsupported manifest, tool failure): devices pull. */
export interface FailedPair {
  ok: false;
  reason: string;
}

export type StoredPair = ReadyPair | FailedPair;

/** A computed OS pair (os-deltas.ts): the delta of slot image `to` against slot image `from`. */
export interface ReadyOsPair {
  ok: true;
  digest: string;
  size: number;
  sourceSha256: string;
  sourceSize: number;
  targetSha256: string;
  targetSize: number;
}

export type StoredOsPair = ReadyOsPair | FailedPair;

/**
 * Deltas live beside the registry's blobs, under `<registry root>/deltas/`:
 *   sha256/<aa>/<hex>              content-addressed delta files
 *   pairs/<from hex>-<to hex>.json what was computed for (A manifest, B manifest): a ReadyPair or a FailedPair
 *   os-pairs/<from hex>-<to hex>.json  the same for two OS slot images (their blobs' sha256): a ReadyOsPair or a FailedPair
 *   tmp/<random>/                  one computation's work folder
 *
 * INVARIANT: a delta file appears under sha256/ only by rename() after it was hashed, and a pair file only by rename()
 * after its delta file is in place, so a crash at any instant leaves at most a folder under tmp/ (swept on start) or
 * a delta file no pair names (collected by delta-gc.ts).
 */
export class DeltaStore {
  readonly root: string;

  constructor(registryRoot: string) {
    this.root = join(registryRoot, 'deltas');
  }

  async init(): Promise<void> {
    await rm(join(this.root, 'tmp'), { recursive: true, force: true });
    for (const dir of ['sha256', 'pairs', 'os-pairs', 'tmp']) await mkdir(join(this.root, dir), { recursive: true });
  }

  blobPath(hex: string): string {
    return join(this.root, 'sha256', hex.slice(0, 2), hex);
  }

  get pairsDir(): string {
    return join(this.root, 'pairs');
  }

  get osPairsDir(): string {
    return join(this.root, 'os-pairs');
  }

  pairPath(fromHex: string, toHex: string): string {
    return join(this.pairsDir, `${fromHex}-${toHex}.json`);
  }

  osPairPath(fromHex: string, toHex: string): string {
    return join(this.osPairsDir, `${fromHex}-${toHex}.json`);
  }

  async workDir(): Promise<string> {
    return mkdtemp(join(this.root, 'tmp', 'compute-'));
  }

  async readPair(fromHex: string, toHex: string): Promise<StoredPair | undefined> {
    return readJson<StoredPair>(this.pairPath(fromHex, toHex));
  }

  async readOsPair(fromHex: string, toHex: string): Promise<StoredOsPair | undefined> {
    return readJson<StoredOsPair>(this.osPairPath(fromHex, toHex));
  }

  /** Moves a hashed delta file into place, then records the pair (see the INVARIANT above). */
  async putPair(fromHex: string, toHex: string, pair: StoredPair, deltaFile?: string): Promise<void> {
    await this.put(this.pairPath(fromHex, toHex), pair, deltaFile);
  }

  async putOsPair(fromHex: string, toHex: string, pair: StoredOsPair, deltaFile?: string): Promise<void> {
    await this.put(this.osPairPath(fromHex, toHex), pair, deltaFile);
  }

  private async put(file: string, pair: StoredPair | StoredOsPair, deltaFile: string | undefined): Promise<void> {
    if (pair.ok) {
      if (!deltaFile) throw new Error('a ready pair needs its delta file');
      const target = this.blobPath(pair.digest.slice('sha256:'.length));
      await mkdir(dirname(target), { recursive: true });
      await rename(deltaFile, target);
    }
    const temp = `${file}.tmp-${randomUUID()}`;
    await writeFile(temp, JSON.stringify(pair));
    await rename(temp, file);
  }

  async blobSize(hex: string): Promise<number | undefined> {
    return (await stat(this.blobPath(hex)).catch(() => undefined))?.size;
  }

  readBlob(hex: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(hex), range);
  }

  async pairNames(dir = this.pairsDir): Promise<string[]> {
    return (await readdir(dir).catch(() => [] as string[])).filter((n) => /^[0-9a-f]{64}-[0-9a-f]{64}\.json$/.test(n));
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
