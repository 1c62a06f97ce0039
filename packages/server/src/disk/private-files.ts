import { closeSync, mkdirSync, chmodSync, openSync } from 'node:fs';
import { chmod, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The data folder holds every tenant's variables (the SQLite database), registry blobs and the token secret: only
 * the server's own user may read any of it.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` (and missing parents) 0700, and makes it 0700 if it already existed. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Creates `file` empty and 0600 if it does not exist, so what opens it later (SQLite) keeps that mode. */
export function touchPrivateFile(file: string): void {
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
}

/**
 * Makes every folder under `root` (itself included) 0700 and every file 0600, for data folders written by older
 * versions or by hand. Symbolic links are left alone (chmod would follow them out of the folder). Returns how many
 * entries were seen and how many changed.
 */
export async function tightenTree(root: string): Promise<{ entries: number; tightened: number }> {
  const counts = { entries: 0, tightened: 0 };
  const visit = async (path: string) => {
    const info = await lstat(path).catch(() => undefined);
    if (!info || info.isSymbolicLink()) return;
    counts.entries += 1;
    const wanted = info.isDirectory() ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
    if ((info.mode & 0o777) !== wanted) {
      await chmod(path, wanted).catch(() => undefined);
      counts.tightened += 1;
    }
    if (info.isDirectory())
      for (const name of await readdir(path).catch(() => [] as string[])) await visit(join(path, name));
  };
  await visit(root);
  return counts;
}
