import { rm } from 'node:fs/promises';
import { assertNotInUse } from './disk-image.js';
import { withImageLock } from './image-lock.js';
import { compressionOf, defaultOutput, extractImage } from './image-source.js';

/**
 * Runs `work` on the image a writing command (`os configure`, `os preload`) changes: the image itself, or, for a
 * compressed download or with `output`, a new uncompressed copy made first (`extractedFrom` then names a compressed
 * source). The image lock is held for the whole run, taken before the copy is made, so two runs with the same
 * output collide too. A copy made for a run that fails is removed, never left half-written.
 */
export async function onWritableImage<T>(
  source: { image: string; output?: string | undefined },
  work: (target: string, extractedFrom: string | undefined) => Promise<T>,
): Promise<T> {
  const compression = await compressionOf(source.image);
  const copied = compression !== 'none' || source.output !== undefined;
  const target = copied ? (source.output ?? defaultOutput(source.image)) : source.image;
  return withImageLock(target, async () => {
    if (!copied) {
      await assertNotInUse(target);
      return work(target, undefined);
    }
    await extractImage(source.image, compression, target);
    try {
      return await work(target, compression !== 'none' ? source.image : undefined);
    } catch (error) {
      await rm(target, { force: true });
      throw error;
    }
  });
}
