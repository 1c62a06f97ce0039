import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';

const MIB = 1 << 20;

export interface SlotImage {
  /** The raw ext4 image to push: the file given, or one made from the tarball in the work folder. */
  path: string;
  sha256: string;
  size: number;
  /** The tarball it was made from, when it was one. */
  madeFrom?: string;
}

/** What the file is, from its first bytes: an ext2/3/4 filesystem, a tarball (plain or gzip), or neither. */
export async function kindOf(file: string): Promise<'ext4' | 'tar' | 'tar.gz' | 'unknown'> {
  const handle = await open(file, 'r').catch((error: NodeJS.ErrnoException) => {
    throw new FlotillaError('VALIDATION_FAILED', `cannot read ${file}: ${error.code ?? error.message}`);
  });
  try {
    const head = Buffer.alloc(2048);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    // The ext superblock starts at byte 1024; its magic 0xEF53 is at offset 56 in it, little-endian.
    if (bytesRead >= 1082 && head.readUInt16LE(1080) === 0xef53) return 'ext4';
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
    if (bytesRead >= 262 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
    return 'unknown';
  } finally {
    await handle.close();
  }
}

/**
 * The slot image for `file`: a raw ext4 image as it is, or a rootfs tarball turned into one in `workDir` with
 * `mke2fs -t ext4 -d`, sized to the tarball's content plus a third and 16 MiB (the journal, inode tables and room
 * for what the OS writes there at first boot). mke2fs from e2fsprogs 1.47.1 reads the tarball itself; an older one
 * gets it extracted first, under fakeroot when not root, so the files keep the owners the tarball gives them.
 */
export async function slotImageFrom(file: string, workDir: string): Promise<SlotImage> {
  const kind = await kindOf(file);
  if (kind === 'unknown')
    throw new FlotillaError('VALIDATION_FAILED', `${file} is neither an ext4 filesystem image nor a rootfs tarball`);
  if (kind === 'ext4') return { path: file, ...(await digestOf(file)) };
  const content = await tarContentBytes(file, kind);
  const mib = Math.max(32, Math.ceil((content * 4) / 3 / MIB) + 16);
  await mkdir(workDir, { recursive: true });
  const image = join(workDir, 'slot.ext4');
  const mkfs = ['-q', '-F', '-t', 'ext4', '-L', 'flotilla-os', '-d'];
  const direct = await run('mke2fs', [...mkfs, file, image, `${mib}M`]).then(
    () => true,
    () => false,
  );
  if (!direct) {
    const root = join(workDir, 'rootfs');
    await mkdir(root, { recursive: true });
    // $1 tarball, $2 folder, $3 image, $4 size: one shell so that fakeroot's recorded owners reach mke2fs.
    const script = 'tar -xpf "$1" --numeric-owner -C "$2" && mke2fs -q -F -t ext4 -L flotilla-os -d "$2" "$3" "$4"';
    const args = ['-c', script, 'sh', file, root, image, `${mib}M`];
    if (process.getuid?.() === 0) await run('sh', args);
    else await run('fakeroot', ['sh', ...args]);
  }
  return { path: image, madeFrom: file, ...(await digestOf(image)) };
}

async function tarContentBytes(file: string, kind: 'tar' | 'tar.gz'): Promise<number> {
  if (kind === 'tar') return (await stat(file)).size;
  let bytes = 0;
  for await (const chunk of createReadStream(file).pipe(createGunzip())) bytes += (chunk as Buffer).length;
  return bytes;
}

export async function digestOf(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 30 * 60_000 }, (error, _stdout, stderr) =>
      error
        ? reject(new FlotillaError('VALIDATION_FAILED', `${file}: ${String(stderr).trim() || error.message}`))
        : resolve(),
    ),
  );
}
