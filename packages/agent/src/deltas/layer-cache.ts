import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../store/private-files.js';

/** Default bound of the cache's bytes on disk (compressed): about two releases of a 500 MB image's changed layers. */
export const LAYER_CACHE_DEFAULT_BYTES = 512 * 1024 * 1024;

export interface CachedLayer {
  name: string;
  bytes: number;
  /** Last stored or read (the file's mtime). */
  usedMs: number;
}

/** The entries to remove, least recently used first, until the rest fits in `limitBytes`. Pure. */
export function layersToEvict(entries: readonly CachedLayer[], limitBytes: number): string[] {
  let total = entries.reduce((sum, e) => sum + e.bytes, 0);
  const evicted: string[] = [];
  for (const entry of [...entries].sort((a, b) => a.usedMs - b.usedMs || a.name.localeCompare(b.name))) {
    if (total <= limitBytes) break;
    evicted.push(entry.name);
    total -= entry.bytes;
  }
  return evicted;
}

const hexOf = (diffId: string) => diffId.slice('sha256:'.length);
const isDiffId = (diffId: string) => /^sha256:[0-9a-f]{64}$/.test(diffId);

/**
 * Layers the agent pulled (their registry gzip blobs, moved in after the load: `<diffID hex>.gz`) or rebuilt from a
 * delta (written as they are rebuilt, uncompressed: `<diffID hex>.tar`), in `<data>/layer-cache/`, so the next delta reads its base layers here instead
 * of through `docker save` (engine 20.10 writes the whole image to a temp folder before its first byte). Bounded:
 * least recently used entries go once the total passes `limitBytes`.
 * INVARIANT: an entry is trusted only after its decompressed bytes hash to its diffID (extract); a wrong one is
 * removed and the caller reads the engine instead, so the cache can cost time but never a wrong image.
 */
export class LayerCache {
  constructor(
    readonly dir: string,
    private readonly limitBytes: number = LAYER_CACHE_DEFAULT_BYTES,
  ) {}

  private file(diffId: string, kind: 'gz' | 'tar' = 'gz'): string {
    return join(this.dir, `${hexOf(diffId)}.${kind}`);
  }

  /** Takes in a gzip blob of layer `diffId` (moved, or copied with `copy`), then evicts past the bound. */
  async store(diffId: string, blob: string, copy = false): Promise<void> {
    await this.adopt(diffId, blob, 'gz', copy);
  }

  private async adopt(diffId: string, blob: string, kind: 'gz' | 'tar', copy = false): Promise<void> {
    if (!isDiffId(diffId) || this.limitBytes <= 0) return;
    await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const target = this.file(diffId, kind);
    await (copy ? copyFile(blob, target) : rename(blob, target));
    const now = new Date();
    await utimes(target, now, now);
    await this.evict();
  }

  /**
   * A stream to write layer `diffId`'s uncompressed bytes into; `commit` keeps the entry (call it only once the
   * bytes were checked against the diffID), `abort` drops it.
   * WARNING: not compressed: gzip (level 1) beside the rebuild doubled its time on the 2-core bench machine
   * (bench/delta.mjs); the disk it costs counts against the bound like any entry.
   */
  async writer(diffId: string): Promise<{ stream: Writable; commit: () => Promise<void>; abort: () => Promise<void> }> {
    await mkdir(this.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const part = `${this.file(diffId, 'tar')}.${process.pid}.part`;
    const stream = new PassThrough();
    const written = pipeline(stream, createWriteStream(part, { mode: PRIVATE_FILE_MODE }));
    written.catch(() => undefined);
    return {
      stream,
      commit: async () => {
        await written;
        await this.adopt(diffId, part, 'tar');
        await rm(part, { force: true }); // still there only when the cache keeps nothing (a bound of 0)
      },
      abort: async () => {
        stream.destroy();
        await written.catch(() => undefined);
        await rm(part, { force: true });
      },
    };
  }

  /**
   * Decompresses layer `diffId` to `to`. False (and the entry removed if it was wrong) when it is not here, does
   * not decompress or does not hash to its diffID.
   */
  async extract(diffId: string, to: string, signal: AbortSignal): Promise<boolean> {
    if (!isDiffId(diffId)) return false;
    const raw = (await stat(this.file(diffId, 'tar')).catch(() => undefined)) !== undefined;
    const file = this.file(diffId, raw ? 'tar' : 'gz');
    if (!raw && !(await stat(file).catch(() => undefined))) return false;
    const hash = createHash('sha256');
    const hashing = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      const read = createReadStream(file);
      await (raw
        ? pipeline(read, hashing, createWriteStream(to), { signal })
        : pipeline(read, createGunzip(), hashing, createWriteStream(to), { signal }));
    } catch (error) {
      if (signal.aborted) throw error;
      await rm(file, { force: true });
      return false;
    }
    if (`sha256:${hash.digest('hex')}` !== diffId) {
      await rm(file, { force: true });
      return false;
    }
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
    return true;
  }

  /** The cache's bytes on disk (finished entries). */
  async bytes(): Promise<number> {
    return (await this.entries()).reduce((sum, e) => sum + e.bytes, 0);
  }

  private async entries(): Promise<CachedLayer[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const entries: CachedLayer[] = [];
    // A part another process left (an agent killed mid-apply) is never finished: removed.
    for (const name of names.filter((n) => n.endsWith('.part') && !n.endsWith(`.${process.pid}.part`)))
      await rm(join(this.dir, name), { force: true });
    for (const name of names.filter((n) => n.endsWith('.gz') || n.endsWith('.tar'))) {
      const info = await stat(join(this.dir, name)).catch(() => undefined);
      if (info) entries.push({ name, bytes: info.size, usedMs: info.mtimeMs });
    }
    return entries;
  }

  private async evict(): Promise<void> {
    for (const name of layersToEvict(await this.entries(), this.limitBytes))
      await rm(join(this.dir, name), { force: true });
  }
}
