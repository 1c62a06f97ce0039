import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Deterministic incompressible bytes (sha256 in counter mode): a tree that gzip cannot shrink, as binaries are not. */
function bytes(seed: string, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let at = 0, i = 0; at < length; i += 1) at += createHash('sha256').update(`${seed}/${i}`).digest().copy(out, at);
  return out;
}

export interface OsImagePair {
  v1: { path: string; bytes: Buffer };
  v2: { path: string; bytes: Buffer };
}

/**
 * Two raw ext4 slot images (mkfs.ext4 -d, no mount) that differ as two OS releases do: v2 is v1's tree with
 * `/etc/os-release` changed, a few files rewritten and one added. `files` files of `fileBytes` each; the image is
 * `mib` MiB. Used by the OS delta tests and bench/os-update.mjs.
 */
export async function osImagePair(
  dir: string,
  o: { mib: number; files: number; fileBytes: number },
): Promise<OsImagePair> {
  const tree = (name: string) => join(dir, `tree-${name}`);
  await mkdir(join(tree('1'), 'etc'), { recursive: true });
  await mkdir(join(tree('1'), 'usr', 'lib'), { recursive: true });
  await writeFile(join(tree('1'), 'etc', 'os-release'), 'NAME="Flotilla OS"\nVERSION="1.0.0"\n');
  for (let i = 0; i < o.files; i += 1)
    await writeFile(join(tree('1'), 'usr', 'lib', `f${i}`), bytes(`f${i}`, o.fileBytes));
  await cp(tree('1'), tree('2'), { recursive: true });
  await writeFile(join(tree('2'), 'etc', 'os-release'), 'NAME="Flotilla OS"\nVERSION="2.0.0"\n');
  for (const i of [1, Math.floor(o.files / 2), o.files - 1])
    await writeFile(join(tree('2'), 'usr', 'lib', `f${i}`), bytes(`f${i} v2`, o.fileBytes));
  await writeFile(join(tree('2'), 'usr', 'lib', 'added'), bytes('added', o.fileBytes));
  const image = async (name: string) => {
    const path = join(dir, `os-${name}.img`);
    // A fixed UUID and hash seed: two builds of one tree differ only where the trees do (as a reproducible OS build).
    await run('mkfs.ext4', [
      '-q',
      '-F',
      '-L',
      `os-${name}`,
      '-U',
      '2f6b9d36-8a4c-4cbe-9d0e-3b1f0a7c5e11',
      '-E',
      'hash_seed=5d2f1a9e-0c4b-4f7e-8a61-2b3c4d5e6f70',
      '-d',
      tree(name),
      path,
      `${o.mib}M`,
    ]);
    return { path, bytes: await readFile(path) };
  };
  return { v1: await image('1'), v2: await image('2') };
}
