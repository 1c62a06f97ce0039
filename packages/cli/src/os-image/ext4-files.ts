import { execFile } from 'node:child_process';
import { FlotillaError } from '@flotilla/protocol';

/** Paths handed to debugfs: its command parser splits at spaces and reads quotes, so only plain paths are passed. */
const PLAIN_PATH = /^[A-Za-z0-9_./+-]+$/;

/**
 * Files of an ext4 filesystem inside a disk image, written with e2fsprogs' `debugfs -w` (no root, no mount). The
 * filesystem is addressed in place with the unix I/O manager's `?offset=<bytes>` option (e2fsprogs ≥ 1.43), so
 * nothing is copied out and back.
 * WARNING: debugfs exits 0 when a command fails and says so on stderr only; every run is checked by its stderr.
 */
export class Ext4Files {
  private readonly spec: string;

  constructor(image: string, offset: number) {
    // The I/O manager reads everything after the first '?' as options.
    if (image.includes('?'))
      throw new FlotillaError('VALIDATION_FAILED', `the image path ${image} contains '?', which debugfs cannot open`);
    this.spec = `${image}?offset=${offset}`;
  }

  /** Entries of `dir` (without . and ..), or undefined when it does not exist. */
  async list(dir: string): Promise<{ name: string; directory: boolean; size: number }[] | undefined> {
    const { stdout, errors } = await this.run(`ls -p ${plain(dir)}`, false);
    if (errors.some((line) => /File not found/.test(line))) return undefined;
    fail(errors, `listing ${dir}`);
    // `ls -p`: /inode/mode/uid/gid/name/size/ per entry; the name cannot hold '/'.
    return stdout
      .split('\n')
      .map((line) => line.split('/'))
      .filter((f) => f.length >= 7 && f[5] !== '.' && f[5] !== '..')
      .map((f) => ({ name: f[5] as string, directory: (f[2] ?? '').startsWith('04'), size: Number(f[6]) || 0 }));
  }

  /**
   * Makes `path` and its parents where missing.
   * WARNING: only missing ones: debugfs 1.47's mkdir of an existing name allocates the new directory before it finds
   * the name taken and leaves it allocated and unlinked (e2fsck then finds an unconnected directory).
   */
  async mkdirs(path: string): Promise<void> {
    let at = '';
    for (const part of path.split('/').filter(Boolean)) {
      at = at === '' ? part : `${at}/${part}`;
      const parent = at.includes('/') ? at.slice(0, at.lastIndexOf('/')) : '/';
      const entries = await this.list(parent);
      if (entries?.some((e) => e.name === part)) continue;
      fail((await this.run(`mkdir ${plain(at)}`, true)).errors, `making ${at}`);
    }
  }

  async remove(path: string): Promise<void> {
    fail((await this.run(`rm ${plain(path)}`, true)).errors, `removing ${path}`);
  }

  /** Copies the local file `source` to `target` (which must not exist). */
  async write(source: string, target: string): Promise<void> {
    fail((await this.run(`write ${plain(source)} ${plain(target)}`, true)).errors, `writing ${target}`);
  }

  private run(command: string, writable: boolean): Promise<{ stdout: string; errors: string[] }> {
    const args = [...(writable ? ['-w'] : []), '-R', command, this.spec];
    return new Promise((resolve, reject) => {
      execFile('debugfs', args, { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        if (error && (error as NodeJS.ErrnoException).code === 'ENOENT')
          return reject(
            new FlotillaError(
              'VALIDATION_FAILED',
              'debugfs (e2fsprogs) is needed to write into the ext4 data partition: apt-get install e2fsprogs',
            ),
          );
        // The banner ("debugfs 1.47.0 (5-Feb-2023)") is the one line on stderr that is not an error.
        const errors = stderr
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line !== '' && !/^debugfs \d/.test(line));
        if (error && errors.length === 0) errors.push(error.message);
        resolve({ stdout, errors });
      });
    });
  }
}

function plain(path: string): string {
  if (!PLAIN_PATH.test(path))
    throw new FlotillaError('VALIDATION_FAILED', `${path}: only letters, digits and _./+- can be passed to debugfs`);
  return path;
}

function fail(errors: string[], what: string): void {
  if (errors.length > 0)
    throw new FlotillaError('DISK_IMAGE_INVALID', `debugfs failed ${what} in the data partition: ${errors.join('; ')}`);
}
