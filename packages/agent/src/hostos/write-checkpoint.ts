import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';

/**
 * How far a slot write got, durably: the slot's first `bytes` bytes are the image's (fdatasync'ed before this was
 * written), and they hash, as a prefix, to `prefixSha256`. It lets a write cut by a restart or a power cut go on
 * from there instead of downloading the image again.
 * INVARIANT: written only after the slot's bytes it describes are synced, and removed before a write from byte 0
 * overwrites them; on its own it is never trusted: the bytes are read back from the slot and must hash to
 * `prefixSha256` (slot-writer.ts `resumePoint`), and the whole image's digest is checked at the end as always.
 */
export const writeCheckpointSchema = z.strictObject({
  /** The image's hex sha256 and size: a checkpoint of another image is not this one's. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.number().int().positive(),
  /** The slot's block device: a checkpoint for the other slot (the booted one since) is not this one's. */
  device: z.string().min(1),
  bytes: z.number().int().min(0),
  prefixSha256: z.string().regex(/^[0-9a-f]{64}$/),
});
export type WriteCheckpoint = z.infer<typeof writeCheckpointSchema>;

/** The checkpoint in `file`, or undefined when there is none or it cannot be read as one (then it is just ignored). */
export async function readCheckpoint(file: string): Promise<WriteCheckpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = writeCheckpointSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Replaces the checkpoint atomically: a power cut leaves the old one or the new one. The folder is not synced after
 * the rename (one fsync less per checkpoint): an older checkpoint coming back describes a shorter prefix of the same
 * bytes, still on the slot, so it is as true as the new one, only less far.
 */
export async function saveCheckpoint(file: string, checkpoint: WriteCheckpoint): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(checkpoint)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}

/** Removes the checkpoint, durably (its folder synced): a power cut right after cannot bring it back. */
export async function clearCheckpoint(file: string): Promise<void> {
  await rm(file, { force: true });
  const dir = await open(dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
