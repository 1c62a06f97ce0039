import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FlotillaError } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import {
  digestOf,
  freshBootloader,
  loopSlots,
  loopUnavailable,
  osImage,
  run,
  simulatedDevice,
  slotVersion,
  type SimulatedDevice,
} from '../test-support/os-slots.js';
import type { HostOsConfig } from './host-os-config.js';
import { openImage, type OpenImage } from './image-source.js';
import { verifySlot, writeSlot } from './slot-writer.js';
import type { OsTarget } from './update-machine.js';

const SLOT_BYTES = 24 << 20;
const IMAGE_MIB = 8;
const skip = await loopUnavailable();

interface Setup {
  dir: string;
  device: SimulatedDevice;
  v1: OsTarget;
  v2: OsTarget;
  v2Path: string;
}

/** Two loop-device slots, OS 1.0.0 on slot a (committed), OS 2.0.0 as an image file, a fresh bootloader env. */
async function setup(t: TestContext, bootloader: HostOsConfig['bootloader']['type']): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-hostos-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const slots = await loopSlots(t, dir, SLOT_BYTES);
  const v1 = await osImage(dir, '1.0.0', IMAGE_MIB);
  const v2 = await osImage(dir, '2.0.0', IMAGE_MIB);
  await run('dd', [`if=${v1.path}`, `of=${slots.a}`, 'bs=1M', 'conv=fsync', 'status=none']);
  const config: HostOsConfig = {
    slots,
    bootloader: await freshBootloader(bootloader, dir),
    trialHealthTimeoutSeconds: 10,
    cmdlineKey: 'flotilla.slot',
  };
  return {
    dir,
    device: simulatedDevice(config, join(dir, 'host-os-update.json')),
    v1: v1.target,
    v2: v2.target,
    v2Path: v2.path,
  };
}

/** An image source that records where each write asked from; the first `failures` opens fail as a cut link would. */
function counting(failures = 0): { froms: number[]; open: OpenImage } {
  const froms: number[] = [];
  return {
    froms,
    open: (url, signal, from = 0) => {
      froms.push(from);
      if (froms.length <= failures)
        return Promise.reject(new FlotillaError('NETWORK_ERROR', 'OS image: connection reset (test)'));
      return openImage(url, signal, from);
    },
  };
}

describe('host OS A/B update on loop devices', { skip }, () => {
  for (const bootloader of ['grub', 'uboot', 'file'] as const) {
    it(`${bootloader}: writes, verifies, reboots into a trial and commits`, async (t) => {
      const { device, v2 } = await setup(t, bootloader);
      assert.equal(await device.powerOn(), 'a');
      const before = await device.agent('a');
      assert.equal((await before.start(v2)).phase, 'armed');
      assert.equal(device.reboots, 1);
      assert.equal(await slotVersion(device.config.slots.b), '2.0.0');

      const booted = await device.powerOn();
      assert.equal(booted, 'b', 'the trial boot starts the new slot');
      const after = await device.agent(booted);
      const done = await after.resume();
      assert.equal(done.phase, 'committed');
      assert.deepEqual(await device.bootloader.read(), { committed: 'b', trial: null });
      assert.equal(await device.powerOn(), 'b', 'and every boot after it');
      assert.equal((await (await device.agent('b')).resume()).phase, 'committed');
    });

    it(`${bootloader}: a new OS that fails its health checks is rolled back, with the reason`, async (t) => {
      const { device, v1, v2 } = await setup(t, bootloader);
      await (await device.agent('a')).start(v2);
      const trial = await device.agent(await device.powerOn(), { healthy: false });
      const failed = await trial.resume();
      assert.equal(failed.phase, 'rolling-back');
      assert.equal(device.reboots, 2, 'the trial asked to reboot back');
      assert.equal(await device.powerOn(), 'a', 'the bootloader returns to the old slot');
      const back = await (await device.agent('a')).resume();
      assert.equal(back.phase, 'rolled-back');
      assert.equal(back.reason?.code, 'OS_TRIAL_UNHEALTHY');
      assert.match(back.reason?.message ?? '', /control plane \(not yet\)/);
      assert.equal(await digestOf(device.config.slots.a, v1.size), v1.sha256, 'the old OS is untouched');
      assert.equal(await device.powerOn(), 'a');
    });

    it(`${bootloader}: a trial boot that never starts the agent ends on the old slot`, async (t) => {
      const { device, v2 } = await setup(t, bootloader);
      await (await device.agent('a')).start(v2);
      assert.equal(await device.powerOn(), 'b');
      // The new OS hangs: nothing runs on it; the watchdog (or a user) power-cycles the device.
      assert.equal(await device.powerOn(), 'a');
      const back = await (await device.agent('a')).resume();
      assert.equal(back.phase, 'rolled-back');
      assert.equal(back.reason?.code, 'OS_TRIAL_BOOT_FAILED');
    });
  }

  it('a corrupt image is written again up to 3 times, then refused before the switch', async (t) => {
    const { dir, device, v2, v2Path } = await setup(t, 'grub');
    const corrupt = join(dir, 'corrupt.img');
    await copyFile(v2Path, corrupt);
    const file = await open(corrupt, 'r+');
    await file.write(Buffer.from([0xff]), 0, 1, 5 << 20);
    await file.close();
    const opened = counting();
    const updater = await device.agent('a', { openImage: opened.open });
    const refused = await updater.start({ ...v2, url: `file://${corrupt}` });
    assert.equal(refused.phase, 'failed');
    assert.equal(refused.reason?.code, 'OS_IMAGE_INVALID');
    assert.deepEqual([refused.attempts, refused.restarts], [3, 0]);
    // A wrong digest drops the checkpoint: each attempt reads the whole image again.
    assert.deepEqual(opened.froms, [0, 0, 0]);
    assert.equal(device.reboots, 0);
    assert.deepEqual(await device.bootloader.read(), { committed: 'a', trial: null });
    assert.equal(await device.powerOn(), 'a');
    // The same OS from a good copy is then accepted.
    assert.equal((await updater.start(v2)).phase, 'armed');
  });

  it('an image that cannot be read fails the update after 3 attempts; the next start is accepted', async (t) => {
    const { device, v2 } = await setup(t, 'file');
    const opened = counting();
    const updater = await device.agent('a', { openImage: opened.open });
    const failed = await updater.start({ ...v2, url: 'file:///nonexistent/os.img' });
    assert.equal(failed.phase, 'failed');
    assert.match(failed.reason?.message ?? '', /ENOENT/);
    assert.equal(opened.froms.length, 3);
    assert.equal((await updater.start(v2)).phase, 'armed');
  });

  it('a write that failed once is written again and the update goes on', async (t) => {
    const { device, v2 } = await setup(t, 'file');
    const opened = counting(1);
    const armed = await (await device.agent('a', { openImage: opened.open })).start(v2);
    assert.deepEqual([armed.phase, armed.attempts, armed.restarts, armed.reason], ['armed', 2, 0, null]);
    assert.deepEqual(opened.froms, [0, 0]);
    assert.equal(await device.powerOn(), 'b');
    assert.equal((await (await device.agent('b')).resume()).phase, 'committed');
  });

  it('an image too large for the slot is refused before a byte is written', async (t) => {
    const { device, v2 } = await setup(t, 'file');
    const opened = counting();
    const refused = await (await device.agent('a', { openImage: opened.open })).start({ ...v2, size: SLOT_BYTES + 1 });
    assert.equal(refused.reason?.code, 'OS_IMAGE_TOO_LARGE');
    assert.deepEqual([refused.phase, refused.attempts, opened.froms.length], ['failed', 1, 0], 'no other attempt');
    assert.equal(device.reboots, 0);
  });

  it('the read-back comes from the device: a byte changed under the slot after the write is caught', async (t) => {
    const { dir, device, v2, v2Path } = await setup(t, 'file');
    const { createReadStream } = await import('node:fs');
    // Held open throughout, as a device's own tools may: the kernel drops a block device's cache on its last close,
    // so without another opener any read-back would skip the cache and this test would not need --flushbufs.
    const holder = await open(device.config.slots.b, 'r');
    t.after(() => holder.close());
    await writeSlot({
      device: device.config.slots.b,
      open: async () => ({ stream: createReadStream(v2Path), start: 0 }),
      sha256: v2.sha256,
      size: v2.size,
    });
    await verifySlot(device.config.slots.b, v2.size, v2.sha256);
    // Changed in the loop device's backing file, not through the device: only a read that skips the cache sees it.
    const backing = await open(join(dir, 'slot-b.img'), 'r+');
    await backing.write(Buffer.from([0xee]), 0, 1, 3 << 20);
    await backing.sync();
    await backing.close();
    await assert.rejects(verifySlot(device.config.slots.b, v2.size, v2.sha256), { code: 'OS_IMAGE_INVALID' });
  });

  it('kill -9 while writing the slot: the old OS still boots and the update retries', async (t) => {
    const { device, v1, v2 } = await setup(t, 'grub');
    const child = spawn(
      process.execPath,
      [
        fileURLToPath(new URL('../test-support/os-write-child.js', import.meta.url)),
        JSON.stringify({ config: device.config, stateFile: device.stateFile, target: v2, chunkDelayMs: 20 }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    t.after(() => child.kill('SIGKILL'));
    let percent = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^progress (\d+)$/.exec(line);
      if (m) percent = Number(m[1]);
    });
    await waitFor('the child to write a third of the slot', () => percent >= 30, { timeoutMs: 30_000 });
    child.kill('SIGKILL');
    assert.equal(await exited, 'SIGKILL');
    assert.ok(percent < 100, `killed mid-write (${percent} %)`);
    assert.equal(JSON.parse(await readFile(device.stateFile, 'utf8')).phase, 'writing');

    assert.equal(await device.powerOn(), 'a', 'the old OS still boots');
    assert.equal(await digestOf(device.config.slots.a, v1.size), v1.sha256);
    // The retry goes on from the write's last checkpoint (every MiB for this image), not from byte 0.
    const froms: number[] = [];
    const resuming: OpenImage = (url, signal, from = 0) => {
      froms.push(from);
      return openImage(url, signal, from);
    };
    const retried = await (await device.agent('a', { openImage: resuming })).resume();
    assert.equal(retried.phase, 'armed');
    // The restart is no failed write: still the first attempt, one restart.
    assert.deepEqual([retried.attempts, retried.restarts], [1, 1]);
    assert.equal(froms.length, 1);
    assert.ok((froms[0] ?? 0) >= 2 << 20 && (froms[0] ?? 0) < v2.size, `resumed from ${froms}`);
    assert.equal(await device.powerOn(), 'b');
    assert.equal((await (await device.agent('b')).resume()).phase, 'committed');
    assert.equal(await slotVersion(device.config.slots.b), '2.0.0');
  });
});
