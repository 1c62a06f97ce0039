import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, open, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';
import yauzl from 'yauzl';

export type Compression = 'gzip' | 'zip' | 'none';

/** What the file is, by its first bytes (not its name: a renamed download is still what it is). */
export async function compressionOf(path: string): Promise<Compression> {
  const handle = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    throw new FlotillaError(
      error.code === 'ENOENT' ? 'VALIDATION_FAILED' : 'DISK_IMAGE_INVALID',
      error.code === 'ENOENT' ? `no such file: ${path}` : `cannot open ${path}: ${error.code}`,
    );
  });
  try {
    const head = Buffer.alloc(4);
    await handle.read(head, 0, 4, 0);
    if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
    if (head.readUInt32LE(0) === 0x04034b50) return 'zip';
    return 'none';
  } finally {
    await handle.close();
  }
}

/** Where a configured copy of a compressed download goes by default: `x.img.gz` → `x.img`, `x.zip` → `x.img`. */
export function defaultOutput(path: string): string {
  const stripped = path.replace(/\.(gz|zip)$/i, '');
  return /\.img$/i.test(stripped) ? stripped : `${stripped}.img`;
}

/**
 * Writes the raw disk image held in `source` (plain, gzip or a zip with one `.img` in it) to a new file `target`,
 * created 0600 (it will hold the device's keys). A target that exists is refused, never overwritten; a failure removes
 * the partial copy.
 */
export async function extractImage(source: string, compression: Compression, target: string): Promise<void> {
  if (
    await stat(target).then(
      () => true,
      () => false,
    )
  )
    throw new FlotillaError('VALIDATION_FAILED', `${target} already exists; remove it or choose another --output`);
  try {
    if (compression === 'none') {
      await copyFile(source, target);
      const handle = await open(target, 'r');
      await handle.chmod(0o600);
      await handle.close();
      return;
    }
    const input = compression === 'gzip' ? createReadStream(source).pipe(createGunzip()) : await zipEntry(source);
    await pipeline(input, createWriteStream(target, { flags: 'wx', mode: 0o600 }));
  } catch (error) {
    await rm(target, { force: true });
    if (error instanceof FlotillaError) throw error;
    throw new FlotillaError('DISK_IMAGE_INVALID', `cannot decompress ${source}: ${(error as Error).message}`);
  }
}

/** The one disk image inside a zip archive, as a stream. */
function zipEntry(path: string): Promise<Readable> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false }, (error, zip) => {
      if (error || !zip) return reject(error ?? new Error('unreadable zip'));
      const images: yauzl.Entry[] = [];
      zip.on('entry', (entry: yauzl.Entry) => {
        if (/\.(img|raw)$/i.test(entry.fileName) && !entry.fileName.endsWith('/')) images.push(entry);
        zip.readEntry();
      });
      zip.on('error', reject);
      zip.on('end', () => {
        const [entry] = images;
        if (images.length !== 1 || !entry) {
          zip.close();
          return reject(
            new FlotillaError(
              'DISK_IMAGE_INVALID',
              `${path} holds ${images.length} .img files; expected exactly one (unzip it and pass the image)`,
            ),
          );
        }
        zip.openReadStream(entry, (streamError, stream) => {
          if (streamError || !stream) return reject(streamError ?? new Error('unreadable zip entry'));
          stream.on('end', () => zip.close());
          resolve(stream);
        });
      });
      zip.readEntry();
    });
  });
}
