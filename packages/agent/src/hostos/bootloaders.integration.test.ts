import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run } from '../test-support/os-slots.js';
import { GrubBootloader, GrubBootSimulator } from './grub-bootloader.js';
import { UBootBootloader, UBootBootSimulator } from './uboot-bootloader.js';

const GRUB_CFG = fileURLToPath(new URL('../../src/hostos/flotilla-ab.grub.cfg', import.meta.url));

async function tools(...names: string[]): Promise<string | undefined> {
  for (const name of names) {
    const found = await run('sh', ['-c', `command -v ${name}`]).then(
      () => true,
      () => false,
    );
    if (found) continue;
    if (process.env.CI === 'true') throw new Error(`${name} is missing in CI: scripts/setup.sh installs it`);
    return `${name} is not installed (npm run setup installs it)`;
  }
  return undefined;
}

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-bootloader-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('GRUB adapter on a real grubenv', { skip: await tools('grub-editenv', 'grub-script-check') }, () => {
  it('the documented grub.cfg part is valid GRUB script and reads the variables the adapter writes', async () => {
    await run('grub-script-check', [GRUB_CFG]);
    const cfg = await readFile(GRUB_CFG, 'utf8');
    assert.match(cfg, /^load_env flotilla_slot flotilla_trial$/m);
    assert.match(cfg, /^ {2}save_env flotilla_trial$/m);
  });

  it('arms a one-shot trial and commits, keeping a valid 1 KiB environment block', async (t) => {
    const grub = new GrubBootloader(join(await tempDir(t), 'grubenv'));
    await grub.ensureCreated();
    assert.deepEqual(await grub.read(), { committed: 'a', trial: null }, 'a new block boots a');
    await grub.armTrial('b');
    assert.match(await run('grub-editenv', [grub.grubenv, 'list']), /^flotilla_trial=b$/m);
    assert.deepEqual(await grub.read(), { committed: 'a', trial: 'b' });
    const boot = new GrubBootSimulator(grub);
    assert.equal(await boot.boot(), 'b');
    assert.deepEqual(await grub.read(), { committed: 'a', trial: null }, 'the trial was spent by that boot');
    assert.equal(await boot.boot(), 'a');
    await grub.armTrial('b');
    assert.equal(await boot.boot(), 'b');
    await grub.commit('b');
    assert.equal(await boot.boot(), 'b');
    assert.equal(await boot.boot(), 'b');
    assert.equal((await stat(grub.grubenv)).size, 1024);
    assert.match(await readFile(grub.grubenv, 'latin1'), /^# GRUB Environment Block\n/);
    await grub.ensureCreated();
    assert.deepEqual(await grub.read(), { committed: 'b', trial: null }, 'an existing block is kept');
  });

  it('a grubenv that is not one is BOOTLOADER_FAILED with the tool saying why', async (t) => {
    const path = join(await tempDir(t), 'grubenv');
    await writeFile(path, 'not an environment block');
    await assert.rejects(new GrubBootloader(path).read(), { code: 'BOOTLOADER_FAILED' });
  });
});

describe('U-Boot adapter on a real environment (fw_setenv)', {
  skip: await tools('fw_setenv', 'fw_printenv', 'mkenvimage'),
}, () => {
  for (const redundant of [false, true])
    it(`boot counting returns to the committed slot after one trial boot${redundant ? ' (redundant environment)' : ''}`, async (t) => {
      const dir = await tempDir(t);
      await writeFile(join(dir, 'defaults'), 'flotilla_slot=a\nbootlimit=1\nbootcount=0\nupgrade_available=0\n');
      const copies = redundant ? ['env1', 'env2'] : ['env1'];
      for (const copy of copies)
        await run('mkenvimage', [
          ...(redundant ? ['-r'] : []),
          '-s',
          '0x4000',
          '-o',
          join(dir, copy),
          join(dir, 'defaults'),
        ]);
      const config = join(dir, 'fw_env.config');
      await writeFile(config, copies.map((c) => `${join(dir, c)} 0x0 0x4000\n`).join(''));
      const uboot = new UBootBootloader(config);
      const boot = new UBootBootSimulator(uboot);
      assert.deepEqual(await uboot.read(), { committed: 'a', trial: null });
      await uboot.armTrial('b');
      assert.deepEqual(await uboot.read(), { committed: 'a', trial: 'b' });
      assert.equal(await boot.boot(), 'b', 'bootcount 1 ≤ bootlimit: bootcmd starts the trial');
      assert.match(await run('fw_printenv', ['-c', config, 'bootcount']), /^bootcount=1$/m);
      assert.equal(await boot.boot(), 'a', 'bootcount 2 > bootlimit: altbootcmd goes back');
      assert.deepEqual(await uboot.read(), { committed: 'a', trial: null });
      await uboot.armTrial('b');
      assert.equal(await boot.boot(), 'b');
      await uboot.commit('b');
      assert.equal(await boot.boot(), 'b');
      assert.equal(await boot.boot(), 'b');
      assert.match(await run('fw_printenv', ['-c', config]), /^upgrade_available=0$/m);
    });
});
