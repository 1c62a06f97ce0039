import { mkdir, rm, stat, symlink, writeFile, copyFile, rename } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { debianMirror } from './apt-mirror.js';
import { run } from './exec.js';
import { tempDir } from './net.js';

/**
 * Base images for tests, made without any registry: nothing can be pulled here, so integration tests build their
 * Dockerfiles `FROM` these.
 */
export const BUSYBOX_IMAGE = 'flotilla-test/busybox:latest';
export const DEBIAN_IMAGE = 'flotilla-test/debian:bookworm';

export function cacheDir(): string {
  return process.env.FLOTILLA_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flotilla');
}

async function imageExists(ref: string): Promise<boolean> {
  try {
    await run('docker', ['image', 'inspect', '--format', '{{.Id}}', ref]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Serialises fixture creation across test processes (node --test runs files in parallel) with an atomic mkdir
 * lock; a lock older than 15 minutes is considered left by a killed process and broken.
 */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const dir = join(cacheDir(), 'locks');
  await mkdir(dir, { recursive: true });
  const lock = join(dir, `${name}.lock`);
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch {
      try {
        const info = await stat(lock);
        if (Date.now() - info.mtimeMs > 15 * 60_000) await rm(lock, { recursive: true, force: true });
      } catch {
        // vanished meanwhile
      }
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** `flotilla-test/busybox:latest`: busybox-static with every applet linked, imported from a folder. */
export async function ensureBusyboxImage(): Promise<string> {
  if (await imageExists(BUSYBOX_IMAGE)) return BUSYBOX_IMAGE;
  return withLock('busybox', async () => {
    if (await imageExists(BUSYBOX_IMAGE)) return BUSYBOX_IMAGE;
    const busybox = '/bin/busybox';
    await stat(busybox).catch(() => {
      throw new Error('busybox-static is not installed (/bin/busybox); run `npm run setup`');
    });
    const root = await tempDir('flotilla-busybox-');
    try {
      const rootfs = join(root.path, 'rootfs');
      for (const dir of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'tmp', 'etc', 'root', 'var/run', 'data'])
        await mkdir(join(rootfs, dir), { recursive: true });
      await copyFile(busybox, join(rootfs, 'bin/busybox'));
      const { stdout } = await run(busybox, ['--list']);
      for (const applet of stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean)) {
        if (applet !== 'busybox') await symlink('/bin/busybox', join(rootfs, 'bin', applet)).catch(() => undefined);
      }
      await writeFile(
        join(rootfs, 'etc/passwd'),
        'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n',
      );
      await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
      const tarball = join(root.path, 'rootfs.tar');
      await run('tar', ['-C', rootfs, '-cf', tarball, '.']);
      await run('docker', [
        'import',
        '--change',
        'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin',
        '--change',
        'CMD ["sh"]',
        tarball,
        BUSYBOX_IMAGE,
      ]);
      return BUSYBOX_IMAGE;
    } finally {
      await root.remove();
    }
  });
}

/**
 * `flotilla-test/debian:bookworm`: a minbase Debian root made with debootstrap from this machine's configured
 * mirror. The root tarball is cached under cacheDir() so later runs import it in seconds.
 */
export async function ensureDebianImage(): Promise<string> {
  if (await imageExists(DEBIAN_IMAGE)) return DEBIAN_IMAGE;
  return withLock('debian', async () => {
    if (await imageExists(DEBIAN_IMAGE)) return DEBIAN_IMAGE;
    const tarball = join(cacheDir(), 'debian-bookworm-minbase.tar');
    const exists = await stat(tarball).then(
      () => true,
      () => false,
    );
    if (!exists) {
      const mirror = await debianMirror('bookworm');
      const work = await tempDir('flotilla-debootstrap-');
      try {
        const rootfs = join(work.path, 'rootfs');
        await run('debootstrap', ['--variant=minbase', 'bookworm', rootfs, mirror.uri], { timeoutMs: 20 * 60_000 });
        await rm(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
        await mkdir(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
        await run('tar', ['-C', rootfs, '--numeric-owner', '-cf', `${tarball}.partial`, '.']);
        // INVARIANT: the cache file appears only whole (rename is atomic), so a killed run never leaves a bad cache.
        await rename(`${tarball}.partial`, tarball);
      } finally {
        await work.remove();
      }
    }
    await run('docker', [
      'import',
      '--change',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change',
      'CMD ["bash"]',
      tarball,
      DEBIAN_IMAGE,
    ]);
    return DEBIAN_IMAGE;
  });
}

/** True when a Docker engine answers; integration tests call this first and fail loudly if not. */
export async function dockerAvailable(): Promise<boolean> {
  try {
    await run('docker', ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 10_000 });
    return true;
  } catch {
    return false;
  }
}
