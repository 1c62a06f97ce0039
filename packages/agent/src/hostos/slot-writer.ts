import { execFile } from 'node:child_process';
import { createHash, type Hash } from 'node:crypto';
import { open, readFile, realpath, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ImageBytes } from './image-source.js';
import { clearCheckpoint, readCheckpoint, saveCheckpoint, type WriteCheckpoint } from './write-checkpoint.js';

const CHUNK = 1 << 20;
/** Dirty bytes allowed before an fdatasync: bounds the page cache a small device fills, and the final sync's wait. */
const SYNC_EVERY = 32 << 20;
/** With a checkpoint file, one at least this often while bytes come: on a slow link a restart loses at most this. */
const CHECKPOINT_MS = 10_000;
/**
 * And at most this often below SYNC_EVERY: each checkpoint costs an fdatasync of the slot and an fsync of the file,
 * which every 2 MiB halved the write speed of a fast source (bench/os-update.mjs); a restart then downloads again at
 * most half a second of transfer, or checkpointEvery(size) bytes, whichever is more.
 */
const MIN_CHECKPOINT_MS = 500;

/** Bytes between checkpoints: 1/64 of the image (what a restart may download again) within [1 MiB, SYNC_EVERY]. */
export function checkpointEvery(size: number): number {
  return Math.min(SYNC_EVERY, Math.max(CHUNK, Math.ceil(size / 64 / CHUNK) * CHUNK));
}

export interface SlotWrite {
  /** The slot's block device (or a regular file standing in for one). */
  device: string;
  /** The raw root filesystem image from byte `from`: 0, or where a checkpoint says the slot already holds it to. */
  open: (from: number) => Promise<ImageBytes>;
  /** Hex sha256 of the whole image. */
  sha256: string;
  size: number;
  /** Where the write's durable progress is kept (write-checkpoint.ts); without one every write starts at byte 0. */
  checkpoint?: string | undefined;
  /** Percent of the image on the slot (0–100), at most once per percent; a resumed write starts where it was. */
  onProgress?: ((percent: number) => void) | undefined;
  log?: Pick<Logger, 'info' | 'warn'> | undefined;
  signal?: AbortSignal | undefined;
  /** Tests: the least time between two checkpoints (default MIN_CHECKPOINT_MS), 0 for one at every interval. */
  minCheckpointMs?: number | undefined;
}

/** Bytes a slot holds: a block device's size from sysfs (Node cannot ask the BLKGETSIZE64 ioctl), a file's length. */
export async function slotSize(device: string): Promise<number> {
  const info = await stat(device);
  if (!info.isBlockDevice()) return info.size;
  const name = basename(await realpath(device));
  return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
}

/**
 * Streams the image onto the slot, hashing what it writes; resolves only when all `size` bytes are on the slot and
 * their digest is `sha256`, else throws OS_IMAGE_INVALID (or OS_IMAGE_TOO_LARGE before a byte is written).
 * `verifySlot` then reads the slot back. Resolves the byte the write resumed from (0: from the start).
 * INVARIANT: the caller switches nothing before this resolves; the slot is the inactive one, so a half-written or
 * corrupt slot is never booted.
 * Resume: after each fdatasync the checkpoint records how many bytes are on the slot and their prefix digest. A
 * later write of the same image to the same slot reads those bytes back (a local read), and when they still hash to
 * the recorded prefix digest it goes on from there with that hash, asking the source only for the rest; anything
 * else starts from byte 0. The final digest therefore covers every byte of the slot, resumed or not.
 * Writes go through the page cache (not O_DIRECT: Node cannot hand the kernel the aligned buffers it needs), with an
 * fdatasync (and a checkpoint) every checkpointEvery(size) bytes but at most every MIN_CHECKPOINT_MS, at least every
 * CHECKPOINT_MS and every SYNC_EVERY bytes (only those without a checkpoint file), and at the end.
 */
export async function writeSlot(w: SlotWrite): Promise<number> {
  const capacity = await slotSize(w.device);
  if (w.size > capacity)
    throw new FlotillaError('OS_IMAGE_TOO_LARGE', `the image (${w.size} bytes) does not fit ${w.device} (${capacity})`);
  const file = await open(w.device, 'r+');
  const syncEvery = w.checkpoint ? checkpointEvery(w.size) : SYNC_EVERY;
  // Network chunks are 16–64 KiB; the device gets whole CHUNKs, one write syscall each. (Two buffers, to hash one
  // while the other is written, were tried: no faster from a file source on a loaded 2-core machine, so not kept.)
  const staged = Buffer.allocUnsafe(CHUNK);
  let filled = 0;
  let unsynced = 0;
  let lastSync = Date.now();
  let percent = -1;
  let source: ImageBytes | undefined;
  let hash = createHash('sha256');
  let written = 0;
  let resumedFrom = 0;
  const progress = () => {
    const now = Math.floor((written / w.size) * 100);
    if (now !== percent) w.onProgress?.((percent = now));
  };
  const startOver = async () => {
    // INVARIANT: the checkpoint goes before the bytes it describes are overwritten.
    if (w.checkpoint) await clearCheckpoint(w.checkpoint);
    hash = createHash('sha256');
    written = 0;
  };
  // Hashes what goes onto the slot, so the digest is of the slot's bytes, resumed prefix included.
  const flush = async () => {
    hash.update(staged.subarray(0, filled));
    for (let at = 0; at < filled; ) at += (await file.write(staged, at, filled - at, written + at)).bytesWritten;
    written += filled;
    unsynced += filled;
    filled = 0;
    const since = Date.now() - lastSync;
    if (
      unsynced >= SYNC_EVERY ||
      (unsynced >= syncEvery && since >= (w.minCheckpointMs ?? MIN_CHECKPOINT_MS)) ||
      (w.checkpoint && unsynced > 0 && since >= CHECKPOINT_MS)
    ) {
      await file.datasync();
      unsynced = 0;
      lastSync = Date.now();
      if (w.checkpoint) await saveCheckpoint(w.checkpoint, checkpointOf(w, written, hash));
    }
    progress();
  };
  try {
    // The progress shown is the checkpoint's while its bytes are read back (seconds for a large image on a slow card).
    ({ hash, bytes: written } = await resumePoint(file, w, (claimed) => {
      written = claimed;
      progress();
    }));
    resumedFrom = written;
    if (written === 0) await startOver();
    progress();
    if (written < w.size) {
      source = await w.open(written);
      if (source.start !== written) {
        if (source.start !== 0)
          throw new FlotillaError('INTERNAL', `asked the image from ${written}, got ${source.start}`);
        w.log?.warn({ from: written }, 'host OS: the image source cannot resume; writing from the start');
        await startOver();
        progress();
      }
      let received = written;
      for await (const chunk of source.stream) {
        w.signal?.throwIfAborted();
        const bytes = chunk as Buffer;
        received += bytes.length;
        if (received > w.size)
          throw new FlotillaError('OS_IMAGE_INVALID', `the image is longer than the ${w.size} bytes announced`);
        for (let at = 0; at < bytes.length; ) {
          const n = bytes.copy(staged, filled, at);
          at += n;
          filled += n;
          if (filled === CHUNK) await flush();
        }
        // A slow link: what is staged goes to the slot (and a checkpoint) rather than waiting for a whole CHUNK.
        if (w.checkpoint && filled > 0 && Date.now() - lastSync >= CHECKPOINT_MS) await flush();
      }
      await flush();
    }
    await file.datasync();
  } finally {
    source?.stream.destroy();
    await file.close();
  }
  if (written !== w.size)
    throw new FlotillaError('OS_IMAGE_INVALID', `the image ended after ${written} of ${w.size} bytes`);
  const digest = hash.digest('hex');
  if (digest !== w.sha256) {
    // The next write must not build on these bytes: it starts from byte 0.
    if (w.checkpoint) await clearCheckpoint(w.checkpoint);
    throw new FlotillaError('OS_IMAGE_INVALID', `the image received has digest ${digest}, not ${w.sha256}`);
  }
  // The whole image, synced above: a stop before the trial is armed finds it all here, and the next write is a read.
  if (w.checkpoint && resumedFrom < w.size)
    await saveCheckpoint(w.checkpoint, {
      sha256: w.sha256,
      size: w.size,
      device: w.device,
      bytes: w.size,
      prefixSha256: digest,
    });
  return resumedFrom;
}

function checkpointOf(w: SlotWrite, bytes: number, hash: Hash): WriteCheckpoint {
  return { sha256: w.sha256, size: w.size, device: w.device, bytes, prefixSha256: hash.copy().digest('hex') };
}

/**
 * Where a write of `w` can start: after the bytes its checkpoint names, with their hash, when the checkpoint is of
 * this image on this slot and the slot still holds bytes that hash to its prefix digest; byte 0 otherwise.
 */
async function resumePoint(
  file: FileHandle,
  w: SlotWrite,
  checking: (bytes: number) => void,
): Promise<{ hash: Hash; bytes: number }> {
  const fresh = { hash: createHash('sha256'), bytes: 0 };
  const found = w.checkpoint ? await readCheckpoint(w.checkpoint) : undefined;
  if (!found) return fresh;
  if (found.sha256 !== w.sha256 || found.size !== w.size || found.device !== w.device || found.bytes > w.size) {
    w.log?.info(
      { device: found.device },
      'host OS: the write checkpoint is of another image or slot; writing from the start',
    );
    return fresh;
  }
  checking(found.bytes);
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(CHUNK);
  for (let at = 0; at < found.bytes; ) {
    const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, found.bytes - at), at);
    if (bytesRead === 0) return fresh;
    hash.update(buffer.subarray(0, bytesRead));
    at += bytesRead;
  }
  if (hash.copy().digest('hex') !== found.prefixSha256) {
    w.log?.warn(
      { bytes: found.bytes },
      'host OS: the slot no longer holds what its checkpoint says; writing from the start',
    );
    return fresh;
  }
  w.log?.info({ bytes: found.bytes, size: w.size }, 'host OS: resuming the slot write from its checkpoint');
  return { hash, bytes: found.bytes };
}

/** The second check: the slot, read back from the device, holds the image; OS_IMAGE_INVALID otherwise. */
export async function verifySlot(device: string, size: number, sha256: string): Promise<void> {
  const onSlot = await readBackDigest(device, size);
  if (onSlot !== sha256)
    throw new FlotillaError('OS_IMAGE_INVALID', `${device} reads back as ${onSlot}, not ${sha256}`);
}

/** sha256 of the slot's first `size` bytes as the device returns them (its cached pages dropped first). */
export async function readBackDigest(device: string, size: number): Promise<string> {
  if ((await stat(device)).isBlockDevice()) await flushBuffers(device);
  const hash = createHash('sha256');
  const file = await open(device, 'r');
  try {
    const buffer = Buffer.allocUnsafe(CHUNK);
    for (let at = 0; at < size; ) {
      const { bytesRead } = await file.read(buffer, 0, Math.min(CHUNK, size - at), at);
      if (bytesRead === 0) throw new FlotillaError('OS_IMAGE_INVALID', `${device} ended after ${at} bytes`);
      hash.update(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
  } finally {
    await file.close();
  }
  return hash.digest('hex');
}

/**
 * `blockdev --flushbufs` (util-linux, the BLKFLSBUF ioctl): writes back and drops the device's buffer cache, so the
 * read-back comes from the device and not from the pages just written.
 */
function flushBuffers(device: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('blockdev', ['--flushbufs', device], { timeout: 60_000 }, (error, _out, stderr) =>
      error ? reject(new Error(`blockdev --flushbufs ${device}: ${stderr.trim() || error.message}`)) : resolve(),
    ),
  );
}
