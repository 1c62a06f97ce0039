import { readFileSync } from 'node:fs';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { FlotillaError } from '@flotilla/protocol';

/** What a lock file holds: who took it, so a later run can tell a live holder from one that died. */
interface Holder {
  pid: number;
  host: string;
  /** The process's start time (/proc/<pid>/stat field 22), so a pid reused by another process is not taken for it. */
  started?: string;
  since: string;
}

export interface ImageLock {
  readonly path: string;
  release(): Promise<void>;
}

/** The lock file of an image: beside it, so every run on the same path (any user, any tmpdir) finds the same one. */
export function lockPathOf(image: string): string {
  return `${image}.flotilla-lock`;
}

/**
 * Takes the exclusive write lock of `image` for one `os configure`/`os preload` run, or refuses with DISK_IMAGE_BUSY
 * naming the holder. Node has no flock(2), and flock(1) is Linux-only; a lock file is portable and visible. It is made
 * whole (content written to a private file, then hard-linked into place, which fails when the name exists), so a
 * reader never sees a half-written one. A lock whose holder is gone (a run killed with -9 or a power cut) is taken
 * over: same host, and its pid no longer runs, or runs but started at another time (the pid was reused).
 * INVARIANT: release() removes the lock only while it is still this run's.
 */
export async function lockImage(image: string): Promise<ImageLock> {
  const path = lockPathOf(image);
  const mine: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const started = startTime(process.pid);
  if (started) mine.started = started;
  const text = `${JSON.stringify(mine)}\n`;
  const scratch = `${path}.${process.pid}`;
  try {
    await writeFile(scratch, text, { mode: 0o600 });
  } catch (error) {
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `cannot create the lock file ${path} beside the image (${(error as NodeJS.ErrnoException).code}); the image's folder must be writable`,
    );
  }
  try {
    // Two attempts: the second after a stale lock was moved away.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(scratch, path);
        return { path, release: () => releaseLock(path, text) };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = await readHolder(path);
      if (holder && holderAlive(holder)) throw busy(image, path, holder);
      if (!(await takeOverStale(path, holder))) break;
    }
    const holder = await readHolder(path);
    throw busy(image, path, holder);
  } finally {
    await rm(scratch, { force: true });
  }
}

/** Test hook: keeps the lock this long once taken, so a test can start a second run, or kill -9 this one, meanwhile. */
export async function holdForTests(): Promise<void> {
  const ms = Number(process.env.FLOTILLA_TEST_IMAGE_LOCK_HOLD_MS ?? 0);
  if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `work` holding the lock of `image`, released however `work` ends. */
export async function withImageLock<T>(image: string, work: () => Promise<T>): Promise<T> {
  const lock = await lockImage(image);
  try {
    await holdForTests();
    return await work();
  } finally {
    await lock.release();
  }
}

function busy(image: string, path: string, holder: Holder | undefined): FlotillaError {
  const who = holder ? `process ${holder.pid} on ${holder.host} since ${holder.since}` : 'another run';
  return new FlotillaError(
    'DISK_IMAGE_BUSY',
    `${image} is being written by ${who}; wait for it to finish (if no such run exists, remove ${path})`,
  );
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const parsed = JSON.parse(await readFile(path, 'utf8')) as Partial<Holder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return undefined;
    return {
      pid: parsed.pid,
      host: parsed.host,
      since: String(parsed.since ?? '?'),
      ...(typeof parsed.started === 'string' ? { started: parsed.started } : {}),
    };
  } catch {
    return undefined; // gone meanwhile, or not ours: treated as held (never removed on a guess)
  }
}

/** Whether the holder may still be writing. A holder on another host (a shared folder) cannot be checked: it is. */
function holderAlive(holder: Holder): boolean {
  if (holder.host !== hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: it runs, as another user.
  }
  const now = startTime(holder.pid);
  return !(holder.started && now && now !== holder.started);
}

/**
 * Moves a stale lock aside. Two runs may find the same stale lock: the lock is renamed to a name of this run's and read
 * again, so a fresh lock another run made meanwhile is recognised and put back (link: only if the name is still free).
 */
async function takeOverStale(path: string, seen: Holder | undefined): Promise<boolean> {
  if (!seen) return false;
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch {
    return true; // already moved by another run: try again to create it
  }
  const moved = await readHolder(aside);
  if (moved && (moved.pid !== seen.pid || moved.since !== seen.since) && holderAlive(moved)) {
    await link(aside, path).catch(() => undefined);
    await rm(aside, { force: true });
    return false;
  }
  await rm(aside, { force: true });
  return true;
}

async function releaseLock(path: string, text: string): Promise<void> {
  const now = await readFile(path, 'utf8').catch(() => undefined);
  if (now === text) await rm(path, { force: true });
}

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) may hold spaces and parentheses; the fields after the last ')' are plain.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
