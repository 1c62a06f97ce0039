import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

/**
 * The agent's data folder holds secrets: agent.sqlite keeps the local API key and the target state (with the
 * fleet's variables), and the log queue keeps whatever services printed. INVARIANT: only the agent's user can read
 * anything under it: every folder is 0700 and every file 0600, as created (these helpers, and the `mode` of each
 * write under the folder) and, for what an older agent or another tool left, as tightened on every start.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** `mkdir -p`; every folder it creates is 0700. */
export function makePrivateDir(path: string): void {
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIR_MODE });
}

/**
 * Creates `path` empty and 0600 when absent. For files a library creates with its own mode: SQLite makes a new
 * database 0644, but takes an existing (empty) file as a new database, and gives its -wal and -shm the database
 * file's permissions.
 */
export function ensurePrivateFile(path: string): void {
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
}

/**
 * Creates `root` 0700 and takes group and other access off every folder (0700) and file (0600) under it that has
 * any; returns how many it changed. Symbolic links and special files are left alone, and so are the contents of
 * folders `theirs` names (relative path, `/`-separated): files services write into the folders they share with
 * the agent are not the agent's, and a service must not lead this walk anywhere through a link it swapped in.
 */
export function tightenPrivateTree(root: string, theirs: (relativePath: string) => boolean = () => false): number {
  makePrivateDir(root);
  let changed = 0;
  const visit = (path: string): void => {
    let stat: ReturnType<typeof lstatSync>;
    try {
      stat = lstatSync(path);
    } catch {
      return; // gone meanwhile
    }
    const dir = stat.isDirectory();
    if (!dir && !stat.isFile()) return;
    if ((stat.mode & 0o077) !== 0) {
      chmodSync(path, dir ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE);
      changed += 1;
    }
    if (!dir || theirs(relative(root, path).split(sep).join('/'))) return;
    let names: string[];
    try {
      names = readdirSync(path);
    } catch {
      return;
    }
    for (const name of names) visit(join(path, name));
  };
  visit(root);
  return changed;
}
