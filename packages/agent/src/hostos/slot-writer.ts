import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { FlotillaError } from '@flotilla/protocol';

const CHUNK = 1 << 20;
/** Dirty bytes allowed before an fdatasync: bounds the page cache a small device fills, and the final sync's wait. */
const SYNC_EVERY = 32 << 20;

export interface SlotWrite {
  /** The slot's block device (or a regular file standing in for one). */
  device: string;
  /** The raw root filesystem image. */
  source: Readable;
  /** Hex sha256 of the whole image. */
  sha256: string;
  size: number;
  /** Percent of the image written (0–100), at most once per percent. */
  onProgress?: ((percent: number) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** Bytes a slot holds: a block device's size from sysfs (Node cannot ask the BLKGETSIZE64 ioctl), a file's length. */
export async function slotSize(device: string): Promise<number> {
  const info = await stat(device);
  if (!info.isBlockDevice()) return info.size;
  const name = basename(await realpath(device));
  return Number((await readFile(`/sys/class/block/${name}/size`, 'utf8')).trim()) * 512;
}

/**
 * Streams the image onto the slot, hashing what it writes; resolves only when all `size` bytes came and their digest
 * is `sha256`, else throws OS_IMAGE_INVALID (or OS_IMAGE_TOO_LARGE before a byte is written). `verifySlot` then
 * reads the slot back.
 * INVARIANT: the caller switches nothing before this resolves; the slot is the inactive one, so a half-written or
 * corrupt slot is never booted.
 * Writes go through the page cache (not O_DIRECT: Node cannot hand the kernel the aligned buffers it needs), with an
 * fdatasync every SYNC_EVERY bytes and at the end.
 */
export async function writeSlot(w: SlotWrite): Promise<void> {
  const capacity = await slotSize(w.device);
  if (w.size > capacity)
    throw new FlotillaError('OS_IMAGE_TOO_LARGE', `the image (${w.size} bytes) does not fit ${w.device} (${capacity})`);
  const hash = createHash('sha256');
  const file = await open(w.device, 'r+');
  // Network chunks are 16–64 KiB; the device gets whole CHUNKs, one write syscall each. (Two buffers, to hash one
  // while the other is written, were tried: no faster from a file source on a loaded 2-core machine, so not kept.)
  const staged = Buffer.allocUnsafe(CHUNK);
  let filled = 0;
  let received = 0;
  let written = 0;
  let unsynced = 0;
  let percent = -1;
  const flush = async () => {
    for (let at = 0; at < filled; ) at += (await file.write(staged, at, filled - at, written + at)).bytesWritten;
    written += filled;
    unsynced += filled;
    filled = 0;
    if (unsynced >= SYNC_EVERY) {
      await file.datasync();
      unsynced = 0;
    }
    const now = Math.floor((written / w.size) * 100);
    if (now !== percent) w.onProgress?.((percent = now));
  };
  try {
    for await (const chunk of w.source) {
      w.signal?.throwIfAborted();
      const bytes = chunk as Buffer;
      received += bytes.length;
      if (received > w.size)
        throw new FlotillaError('OS_IMAGE_INVALID', `the image is longer than the ${w.size} bytes announced`);
      hash.update(bytes);
      for (let at = 0; at < bytes.length; ) {
        const n = bytes.copy(staged, filled, at);
        at += n;
        filled += n;
        if (filled === CHUNK) await flush();
      }
    }
    await flush();
    await file.datasync();
  } finally {
    await file.close();
  }
  if (written !== w.size)
    throw new FlotillaError('OS_IMAGE_INVALID', `the image ended after ${written} of ${w.size} bytes`);
  const digest = hash.digest('hex');
  if (digest !== w.sha256)
    throw new FlotillaError('OS_IMAGE_INVALID', `the image received has digest ${digest}, not ${w.sha256}`);
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
