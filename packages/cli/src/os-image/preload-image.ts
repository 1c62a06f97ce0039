import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import {
  FlotillaError,
  PRELOAD_DIR_IN_PARTITION,
  PRELOAD_MANIFEST_FILE,
  deltaTag,
  preloadManifestSchema,
} from '@flotilla/protocol';
import type { PreloadImage, PreloadManifest } from '@flotilla/protocol';
import { ensureImage, tagImage } from '../images/images.js';
import type { RegistryAuth } from '../images/images.js';
import type { TargetPlatform } from '../images/platform.js';
import { DiskImage } from './disk-image.js';
import { Ext4Files } from './ext4-files.js';
import { onWritableImage } from './writable-image.js';

export interface PreloadRequest {
  image: string;
  output?: string;
  /** The manifest but its images, which this adds as it saves them. */
  manifest: Omit<PreloadManifest, 'images'>;
  platform: TargetPlatform;
  auth: RegistryAuth;
  docker: Docker;
  log: (line: string) => void;
}

export interface PreloadResult {
  image: string;
  extractedFrom?: string;
  partition: { index: number; label: string; offset: number; freeBytes: number };
  release: string;
  images: { ref: string; file: string; size: number }[];
  bytes: number;
}

/**
 * Room the files need beyond their blocks: extent trees and directory blocks, a few per file, plus slack so the
 * device is not handed a filesystem filled to the last block.
 */
const OVERHEAD_BLOCKS_PER_FILE = 16;
const SLACK_BYTES = 4 * 1024 * 1024;

/**
 * Writes a release into the data partition of a disk image: each service image pulled from the server's registry,
 * `docker save`d under the tag the agent loads it as, then every tar and the manifest written with debugfs into
 * `/flotilla/preload/`. Everything that can refuse (no data partition, too little room) refuses before the first
 * write, so a refused image is unchanged.
 * INVARIANT: the manifest goes first on the way out (an earlier preload) and last on the way in: a write cut short
 * leaves no manifest, which the agent takes as no preload.
 */
export function preloadImage(request: PreloadRequest): Promise<PreloadResult> {
  return onWritableImage(request, async (target, extractedFrom) => {
    const disk = DiskImage.open(target, false);
    let data: ReturnType<DiskImage['dataPartition']>;
    try {
      data = disk.dataPartition();
    } finally {
      disk.close();
    }
    if (data.ext4.needsRecovery)
      throw new FlotillaError(
        'DISK_IMAGE_INVALID',
        `the journal of data partition ${data.partition.index} (${data.ext4.label}) needs recovery (copied from a mounted filesystem?); run e2fsck on it first`,
      );
    const scratch = await mkdtemp(join(tmpdir(), 'flotilla-preload-'));
    try {
      const refs = [...new Set(imageRefs(request.manifest))];
      const images: PreloadImage[] = [];
      for (const [i, ref] of refs.entries()) images.push(await saveImage(request, ref, `image-${i + 1}.tar`, scratch));
      const manifest = preloadManifestSchema.parse({ ...request.manifest, images });
      const manifestFile = join(scratch, PRELOAD_MANIFEST_FILE);
      const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      await writeFile(manifestFile, manifestBytes);
      const files = new Ext4Files(target, data.partition.offset);
      const existing = (await files.list(PRELOAD_DIR_IN_PARTITION)) ?? [];
      const block = data.ext4.blockSize;
      const blocks = (size: number) => Math.ceil(size / block) + OVERHEAD_BLOCKS_PER_FILE;
      const needed =
        (images.reduce((sum, image) => sum + blocks(image.size), 0) + blocks(manifestBytes.length)) * block +
        SLACK_BYTES;
      const freed = existing.reduce((sum, entry) => sum + (entry.directory ? 0 : blocks(entry.size) * block), 0);
      if (needed > data.ext4.freeBytes + freed)
        throw new FlotillaError(
          'DATA_PARTITION_FULL',
          `the release needs ${mib(needed)} in data partition ${data.partition.index} (${data.ext4.label}), which has ${mib(data.ext4.freeBytes + freed)} free; the image is unchanged`,
        );
      const dir = PRELOAD_DIR_IN_PARTITION;
      const previous = existing.filter((e) => !e.directory);
      // The old manifest first: from here until the new one is in, the partition holds no preload at all.
      for (const entry of [...previous].sort((a, b) => rankManifestFirst(a.name) - rankManifestFirst(b.name)))
        await files.remove(`${dir}/${entry.name}`);
      await files.mkdirs(dir);
      for (const image of images) {
        request.log(`writing ${image.file} (${mib(image.size)}) for ${image.ref}`);
        await files.write(join(scratch, image.file), `${dir}/${image.file}`);
      }
      await files.write(manifestFile, `${dir}/${PRELOAD_MANIFEST_FILE}`);
      return {
        image: target,
        ...(extractedFrom ? { extractedFrom } : {}),
        partition: {
          index: data.partition.index,
          label: data.ext4.label,
          offset: data.partition.offset,
          freeBytes: data.ext4.freeBytes,
        },
        release: manifest.release.commit,
        images: images.map(({ ref, file, size }) => ({ ref, file, size })),
        bytes: images.reduce((sum, image) => sum + image.size, manifestBytes.length),
      };
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
}

function imageRefs(manifest: Omit<PreloadManifest, 'images'>): string[] {
  return Object.values(manifest.target.apps).flatMap((app) =>
    Object.values(app.releases).flatMap((release) => Object.values(release.services).map((s) => s.image)),
  );
}

function rankManifestFirst(name: string): number {
  return name === PRELOAD_MANIFEST_FILE ? 0 : 1;
}

/** Pulls `ref` when the engine lacks it, and saves it, tagged as the agent loads it, to `file` in `dir`. */
async function saveImage(request: PreloadRequest, ref: string, file: string, dir: string): Promise<PreloadImage> {
  const { docker, auth, platform, log } = request;
  const tag = deltaTag(ref);
  if (!tag)
    throw new FlotillaError('VALIDATION_FAILED', `the release's image ${ref} is not pinned by digest; deploy it again`);
  await ensureImage(docker, ref, auth, platform, log);
  const { Id: imageId } = await docker.getImage(ref).inspect();
  await tagImage(docker, ref, tag);
  const hash = createHash('sha256');
  let size = 0;
  try {
    log(`saving ${ref}`);
    const tar = (await docker.getImage(tag).get()) as NodeJS.ReadableStream;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    await pipeline(tar, count, createWriteStream(join(dir, file), { mode: 0o600 }));
  } catch (error) {
    throw new FlotillaError(
      'BUILD_FAILED',
      `saving ${ref} failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  } finally {
    // The tag was only for the tar; the image stays under its digest reference.
    await docker
      .getImage(tag)
      .remove({ noprune: true })
      .catch(() => undefined);
  }
  return { ref, imageId, file, sha256: `sha256:${hash.digest('hex')}`, size };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
