import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { FastifyReply } from 'fastify';
import { isNoSpaceError, storageFullError } from '../disk/no-space.js';

/** What the registry needs to know of the data folder's disk (disk/disk-health.ts). */
export interface UploadSpace {
  low(): Promise<boolean>;
  reclaim(): Promise<unknown>;
  noteNoSpace(error?: unknown): Promise<void>;
}

/** An upload untouched this long is abandoned: a client streaming a layer touches its file with every chunk. */
export const ABANDONED_UPLOAD_IDLE_MS = 10 * 60 * 1000;

/**
 * Runs one upload request. A new upload on a disk below its free-space threshold first reclaims abandoned uploads
 * and is refused (STORAGE_FULL) if that was not enough, which keeps room for the database; a write that failed for
 * lack of space is recorded and reclaims too, so the client's retry can succeed.
 */
export async function withUploadSpace<T>(
  space: UploadSpace | undefined,
  startsUpload: boolean,
  run: () => Promise<T>,
): Promise<T> {
  if (space && startsUpload && (await space.low())) {
    await space.reclaim();
    if (await space.low()) throw storageFullError();
  }
  try {
    return await run();
  } catch (error) {
    if (space && isNoSpaceError(error)) {
      await space.noteNoSpace(error);
      await space.reclaim();
    }
    throw error;
  }
}

/**
 * Removes uploads idle for `idleMs` or more under `<root>/uploads`, most stale first, until `enough()`; returns what
 * was removed. INVARIANT: a file in uploads/ is never a blob (storage.ts), so removing one loses no stored image.
 */
export async function reclaimAbandonedUploads(
  root: string,
  enough: () => Promise<boolean>,
  idleMs = ABANDONED_UPLOAD_IDLE_MS,
  now = Date.now(),
): Promise<{ removed: number; bytes: number }> {
  const dir = join(root, 'uploads');
  const candidates: { file: string; mtimeMs: number; size: number }[] = [];
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const file = join(dir, name);
    const info = await stat(file).catch(() => undefined);
    if (info?.isFile() && now - info.mtimeMs >= idleMs)
      candidates.push({ file, mtimeMs: info.mtimeMs, size: info.size });
  }
  candidates.sort((a, b) => a.mtimeMs - b.mtimeMs);
  const freed = { removed: 0, bytes: 0 };
  for (const candidate of candidates) {
    if (await enough()) break;
    await rm(candidate.file, { force: true });
    freed.removed += 1;
    freed.bytes += candidate.size;
  }
  return freed;
}

/**
 * The request body behind a stream of its own. WARNING: a failed write to disk makes `pipeline` destroy its source;
 * destroying the request itself would reset the connection before the client could read the 507.
 */
export function shieldedBody(raw: IncomingMessage, response: NodeJS.EventEmitter): Readable {
  const body = new PassThrough();
  // WARNING: whoever reads the body sees its error; this listener only keeps an error of a body nobody reads (any
  // more) from becoming an uncaught exception that would end the server.
  body.on('error', () => undefined);
  raw.on('error', (error) => body.destroy(error));
  // A client that goes away mid-body must end the reader's wait, also when the request closes without an error.
  raw.on('close', () => {
    if (!raw.complete) body.destroy(new Error('the client closed the request before its body ended'));
  });
  raw.pipe(body);
  // A body nobody read (or no longer reads) is drained once the answer is out, so the connection stays usable.
  response.once('close', () => {
    raw.unpipe(body);
    raw.resume();
  });
  return body;
}

/** The OCI-shaped answer to a write refused for lack of space. */
export function sendStorageFull(reply: FastifyReply): void {
  const error = storageFullError();
  void reply
    .status(error.status)
    .send({ errors: [{ code: error.code, message: error.message, detail: { code: error.code } }] });
}
