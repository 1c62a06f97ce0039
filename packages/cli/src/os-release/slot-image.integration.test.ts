import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chown, mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { digestOf, kindOf, slotImageFrom } from './slot-image.js';

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(file, args, { encoding: 'utf8' }, (error, stdout, stderr) =>
      error ? reject(new Error(`${file}: ${stderr || error.message}`)) : resolve(stdout),
    ),
  );
}

/** A rootfs folder: /etc/os-release, and /home/app/data owned by uid 1234 when this runs as root. */
async function rootfs(dir: string): Promise<string> {
  const root = join(dir, 'root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'home', 'app'), { recursive: true });
  await writeFile(join(root, 'etc', 'os-release'), 'NAME="Flotilla OS"\nVERSION="3.1.0"\n');
  await writeFile(join(root, 'home', 'app', 'data'), 'x'.repeat(100_000));
  if (process.getuid?.() === 0) await chown(join(root, 'home', 'app', 'data'), 1234, 1234);
  return root;
}

describe('the slot image `os release push` sends', () => {
  it('a rootfs tarball becomes an ext4 image with its files and owners', async (t) => {
    const dir = await tempDir('flotilla-slot-');
    t.after(() => dir.remove());
    const root = await rootfs(dir.path);
    for (const [name, flags] of [
      ['rootfs.tar', '-cf'],
      ['rootfs.tar.gz', '-czf'],
    ] as const) {
      const tarball = join(dir.path, name);
      await run('tar', [flags, tarball, '--numeric-owner', '-C', root, '.']);
      assert.equal(await kindOf(tarball), name.endsWith('.gz') ? 'tar.gz' : 'tar');
      const image = await slotImageFrom(tarball, join(dir.path, `work-${name}`));
      assert.equal(image.madeFrom, tarball);
      assert.equal(await kindOf(image.path), 'ext4');
      assert.deepEqual(await digestOf(image.path), { sha256: image.sha256, size: image.size });
      assert.equal((await stat(image.path)).size, 32 << 20, 'a small rootfs gets the 32 MiB floor');
      assert.match(await run('debugfs', ['-R', 'cat /etc/os-release', image.path]), /VERSION="3.1.0"/);
      if (process.getuid?.() === 0)
        assert.match(await run('debugfs', ['-R', 'stat /home/app/data', image.path]), /User:\s+1234\s+Group:\s+1234/);
    }
  });

  it('an ext4 image is sent as it is; anything else is refused', async (t) => {
    const dir = await tempDir('flotilla-slot-');
    t.after(() => dir.remove());
    const image = join(dir.path, 'os.img');
    await run('mkfs.ext4', ['-q', '-F', '-d', await rootfs(dir.path), image, '16M']);
    const slot = await slotImageFrom(image, join(dir.path, 'work'));
    assert.equal(slot.path, image);
    assert.equal(slot.madeFrom, undefined);
    assert.equal(slot.size, 16 << 20);
    const text = join(dir.path, 'notes.txt');
    await writeFile(text, 'not an image');
    await assert.rejects(slotImageFrom(text, join(dir.path, 'work')), { code: 'VALIDATION_FAILED' });
  });
});
