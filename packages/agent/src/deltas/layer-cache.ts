import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, rename, rm, stat, statfs, utimes } from 'node:fs/promises';
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

  /** Takes in (moves) an uncompressed layer tar of layer `diffId`, checked by the caller, then evicts past the bound. */
  async storeTar(diffId: string, file: string): Promise<void> {
    await this.adopt(diffId, file, 'tar');
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
    const file = createWriteStream(part, { mode: PRIVATE_FILE_MODE });
    // WARNING: pipe() with the ends handled here, not pipeline(): pipeline's promise never settles when its source is
    // destroyed after end() (an abort once the layer was written: a corrupted delta), which hung the apply; and a
    // file stream destroyed mid-write throws from inside Node, so an abort ends the file instead.
    let failed: Error | undefined;
    const closed = new Promise<void>((resolve) => file.once('close', resolve));
    file.on('error', (error) => {
      failed ??= error;
      stream.destroy(); // the writer takes no more bytes (its writer sees a destroyed stream), the apply goes on
    });
    stream.pipe(file);
    return {
      stream,
      commit: async () => {
        await closed;
        if (failed) throw failed;
        await this.adopt(diffId, part, 'tar');
        await rm(part, { force: true }); // still there only when the cache keeps nothing (a bound of 0)
      },
      abort: async () => {
        stream.unpipe(file);
        stream.destroy();
        if (!file.destroyed && !file.writableEnded) file.end();
        await closed;
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

  /**
   * Frees at least `bytes` (when the cache holds that much) by removing least recently used entries, whatever the
   * bound: the disk is short for an update, and the cache only saves time. Returns the bytes freed.
   */
  async shrinkBy(bytes: number): Promise<number> {
    const entries = await this.entries();
    const total = entries.reduce((sum, e) => sum + e.bytes, 0);
    const sizes = new Map(entries.map((e) => [e.name, e.bytes]));
    let freed = 0;
    for (const name of layersToEvict(entries, Math.max(0, total - bytes))) {
      await rm(join(this.dir, name), { force: true });
      freed += sizes.get(name) ?? 0;
    }
    return freed;
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

/** Free bytes of the filesystem that holds `dir`. */
export async function freeBytes(dir: string): Promise<number> {
  const fs = await statfs(dir);
  return fs.bavail * fs.bsize;
}

/**
 * Room for an update of `needed` bytes in `dir`: when the disk has less, the layer cache gives up its least recently
 * used entries (it only saves time) if it lives on the same filesystem. Returns the free bytes then, and what the
 * cache gave up.
 */
export async function roomFor(
  dir: string,
  needed: number,
  cache: LayerCache | undefined,
): Promise<{ free: number; freedFromCache: number }> {
  const free = await freeBytes(dir);
  if (free >= needed || !cache) return { free, freedFromCache: 0 };
  await mkdir(cache.dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const [ours, theirs] = await Promise.all([stat(dir), stat(cache.dir)]);
  if (ours.dev !== theirs.dev) return { free, freedFromCache: 0 };
  const freedFromCache = await cache.shrinkBy(needed - free);
  return { free: freedFromCache > 0 ? await freeBytes(dir) : free, freedFromCache };
}
