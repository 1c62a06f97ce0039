import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile, access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * On-disk layout (all below `root`):
 *   blobs/sha256/<aa>/<hex>            content-addressed bytes, shared by every repository (layers, configs, manifests)
 *   uploads/<uuid>                     an upload in progress; never visible as a blob
 *   repos/<key>/_blobs/<hex>           empty marker: this repository may serve that blob
 *   repos/<key>/_manifests/<hex>       the manifest's media type
 *   repos/<key>/_tags/<tag>            the digest the tag points at
 *
 * `<key>` is the repository's storage key (RepositoryLocation.key: `<fleet uuid>/<service>` in Flotilla), not its
 * public name; the `repositories/<name>` folders of the first layout are moved by layout-migration.ts.
 *
 * INVARIANT: a file appears under blobs/ only by rename() after its sha256 was checked, so a crash mid-upload
 * leaves at most a stray file in uploads/, never a wrong or partial blob. Small metadata files are written to a
 * temp name and renamed for the same reason.
 */
export class RegistryStorage {
  constructor(readonly root: string) {}

  async init(): Promise<void> {
    await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true });
    await mkdir(join(this.root, 'uploads'), { recursive: true });
    await mkdir(this.repositoriesDir, { recursive: true });
    await this.sweepUploads();
  }

  /** Removes uploads untouched for `maxAgeMs` (clients that gave up), so uploads/ does not grow forever. */
  async sweepUploads(maxAgeMs = 24 * 3600 * 1000, now = Date.now()): Promise<number> {
    let removed = 0;
    for (const name of await readdir(join(this.root, 'uploads'))) {
      const file = join(this.root, 'uploads', name);
      try {
        if (now - (await stat(file)).mtimeMs > maxAgeMs) {
          await rm(file, { force: true });
          removed += 1;
        }
      } catch {
        // Finished or cancelled meanwhile: nothing to sweep.
      }
    }
    return removed;
  }

  blobPath(hex: string): string {
    return join(this.root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  }

  /** Folder holding every repository, by storage key. */
  get repositoriesDir(): string {
    return join(this.root, 'repos');
  }

  private repoDir(name: string): string {
    return join(this.repositoriesDir, name);
  }

  private uploadPath(id: string): string {
    return join(this.root, 'uploads', id);
  }

  async blobSize(hex: string): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(hex))).size;
    } catch {
      return undefined;
    }
  }

  async isLinked(name: string, hex: string): Promise<boolean> {
    return exists(join(this.repoDir(name), '_blobs', hex));
  }

  async link(name: string, hex: string): Promise<void> {
    const file = join(this.repoDir(name), '_blobs', hex);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, '');
  }

  async unlink(name: string, hex: string): Promise<boolean> {
    const file = join(this.repoDir(name), '_blobs', hex);
    if (!(await exists(file))) return false;
    await rm(file, { force: true });
    return true;
  }

  async startUpload(id: string = randomUUID()): Promise<string> {
    await writeFile(this.uploadPath(id), '');
    return id;
  }

  async uploadSize(id: string): Promise<number | undefined> {
    try {
      return (await stat(this.uploadPath(id))).size;
    } catch {
      return undefined;
    }
  }

  /** Appends a request body to an upload; returns the new size. */
  async appendUpload(id: string, body: Readable): Promise<number> {
    await pipeline(body, createWriteStream(this.uploadPath(id), { flags: 'a' }));
    return (await stat(this.uploadPath(id))).size;
  }

  async cancelUpload(id: string): Promise<void> {
    await rm(this.uploadPath(id), { force: true });
  }

  /**
   * Hashes the finished upload and moves it into the blob store if it matches `hex`. On mismatch the upload is
   * discarded (the client must start over) and false is returned.
   */
  async commitUpload(id: string, hex: string): Promise<boolean> {
    const path = this.uploadPath(id);
    const hash = createHash('sha256');
    await pipeline(createReadStream(path), hash);
    if (hash.digest('hex') !== hex) {
      await rm(path, { force: true });
      return false;
    }
    const handle = await open(path, 'r+');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.moveIntoBlobs(path, hex);
    return true;
  }

  /** Stores bytes already in memory (manifests), verified by the caller. */
  async putBlobBytes(hex: string, bytes: Buffer): Promise<void> {
    if ((await this.blobSize(hex)) === bytes.length) return;
    const temp = this.uploadPath(randomUUID());
    await writeFile(temp, bytes, { flush: true });
    await this.moveIntoBlobs(temp, hex);
  }

  private async moveIntoBlobs(temp: string, hex: string): Promise<void> {
    const target = this.blobPath(hex);
    await mkdir(dirname(target), { recursive: true });
    // Same content either way, so replacing an existing blob with a verified copy is harmless.
    await rename(temp, target);
  }

  readBlob(hex: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.blobPath(hex), range);
  }

  async putManifestLink(name: string, hex: string, mediaType: string): Promise<void> {
    await atomicWrite(join(this.repoDir(name), '_manifests', hex), mediaType);
  }

  async manifestMediaType(name: string, hex: string): Promise<string | undefined> {
    try {
      return await readFile(join(this.repoDir(name), '_manifests', hex), 'utf8');
    } catch {
      return undefined;
    }
  }

  async deleteManifest(name: string, hex: string): Promise<boolean> {
    const file = join(this.repoDir(name), '_manifests', hex);
    if (!(await exists(file))) return false;
    await rm(file, { force: true });
    for (const tag of await this.tags(name)) {
      if ((await this.resolveTag(name, tag)) === `sha256:${hex}`) await this.deleteTag(name, tag);
    }
    return true;
  }

  async putTag(name: string, tag: string, digest: string): Promise<void> {
    await atomicWrite(join(this.repoDir(name), '_tags', tag), digest);
  }

  async resolveTag(name: string, tag: string): Promise<string | undefined> {
    try {
      return (await readFile(join(this.repoDir(name), '_tags', tag), 'utf8')).trim();
    } catch {
      return undefined;
    }
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    const file = join(this.repoDir(name), '_tags', tag);
    if (!(await exists(file))) return false;
    await rm(file, { force: true });
    return true;
  }

  async tags(name: string): Promise<string[]> {
    try {
      return (await readdir(join(this.repoDir(name), '_tags'))).filter((t) => !t.includes('.tmp-')).sort();
    } catch {
      return [];
    }
  }

  async repositoryExists(name: string): Promise<boolean> {
    return exists(this.repoDir(name));
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

async function atomicWrite(file: string, content: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.tmp-${randomUUID()}`;
  await writeFile(temp, content);
  await rename(temp, file);
}
