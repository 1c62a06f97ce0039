import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { RegistryStorage } from '../registry/storage.js';
import { sha256File, xdelta3Encode } from './compute-delta.js';
import type { DeltaStore, StoredOsPair } from './delta-store.js';

/**
 * A delta of at least this share of the target is not worth it: recorded as unavailable, so devices download the
 * full image at once instead of asking again (decoding costs the device a copy of its booted slot and CPU time).
 */
export const OS_DELTA_MAX_RATIO = 0.5;

/**
 * The delta from OS slot image `fromHex` to slot image `toHex` (both raw ext4 blobs in the registry, read in place):
 * one xdelta3 encoding with the same options as a layer's (compute-delta.ts), stored through `store` (atomic). A
 * pair the encoder cannot make, or whose delta is not smaller than OS_DELTA_MAX_RATIO of the target, is recorded as
 * failed; any other failure (disk, abort) rejects and records nothing, so the next ask tries again.
 */
export async function computeOsDelta(
  storage: RegistryStorage,
  store: DeltaStore,
  fromHex: string,
  toHex: string,
  signal?: AbortSignal,
): Promise<StoredOsPair> {
  const [sourceSize, targetSize] = await Promise.all([storage.blobSize(fromHex), storage.blobSize(toHex)]);
  if (sourceSize === undefined || targetSize === undefined) throw new Error('an OS image is not in the registry');
  const work = await store.workDir();
  try {
    const out = join(work, 'delta');
    try {
      await xdelta3Encode(storage.blobPath(fromHex), sourceSize, storage.blobPath(toHex), out, signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      const pair: StoredOsPair = { ok: false, reason: `xdelta3 failed: ${(error as Error).message.slice(0, 300)}` };
      await store.putOsPair(fromHex, toHex, pair);
      return pair;
    }
    const size = (await stat(out)).size;
    if (size >= targetSize * OS_DELTA_MAX_RATIO) {
      const pair: StoredOsPair = {
        ok: false,
        reason: `the delta (${size} bytes) is not smaller than half the image (${targetSize} bytes)`,
      };
      await store.putOsPair(fromHex, toHex, pair);
      return pair;
    }
    const pair: StoredOsPair = {
      ok: true,
      digest: await sha256File(out),
      size,
      sourceSha256: fromHex,
      sourceSize,
      targetSha256: toHex,
      targetSize,
    };
    await store.putOsPair(fromHex, toHex, pair, out);
    return pair;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
