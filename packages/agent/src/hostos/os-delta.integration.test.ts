import assert from 'node:assert/strict';
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Device } from '@flotilla/protocol';
import { osImagePair, waitFor } from '@flotilla/testkit';
import { harness, type Harness } from '../test-support/fixtures.js';
import { loopSlots, loopUnavailable, run, slotVersion } from '../test-support/os-slots.js';
import type { HostOsConfig } from './host-os-config.js';
import { bootloaderFor, bootSimulatorFor } from './select-bootloader.js';
import { readBackDigest } from './slot-writer.js';

/**
 * Issue 17, "bytes transferred (reuse deltas where they exist)": a real agent process on an A/B host (loop devices
 * as slots) booted on OS 1.0.0 is told to install 2.0.0 (two ext4 images of a tree with a few files changed) from
 * the real server, through the tap that counts every byte. By delta it downloads far fewer bytes than the image and
 * the slot holds 2.0.0 exactly; with a booted slot that does not hash to the delta's source, or a delta that does
 * not decode, it writes the full image in the same attempt and the update commits; a delta download cut (the agent
 * killed) resumes with Range.
 */

const CLI_MAIN = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
const CHILD = fileURLToPath(new URL('../test-support/os-agent-child.js', import.meta.url));
const skip = await loopUnavailable();
const hexOf = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function flotilla<T>(configDir: string, args: string[]): Promise<T> {
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) =>
    execFile(
      process.execPath,
      [CLI_MAIN, ...args, '--json'],
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, timeout: 120_000 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`flotilla ${args.join(' ')}: ${stderr}`)) : resolve({ stdout }),
    ),
  );
  return JSON.parse(stdout) as T;
}

type Child = ChildProcessByStdio<null, Readable, null> & { lines: string[] };

/** A device booted on 1.0.0 (slot a holds `slotA`), both releases recorded; `update()` asks for 2.0.0. */
async function host(t: TestContext, slotA: (v1: Buffer) => Buffer = (v1) => v1) {
  const h = await harness();
  t.after(() => h.remove());
  const slots = await loopSlots(t, h.dir, 24 << 20);
  const pair = await osImagePair(h.dir, { mib: 16, files: 40, fileBytes: 200_000 });
  const bootedImage = join(h.dir, 'booted.img');
  await writeFile(bootedImage, slotA(pair.v1.bytes));
  await run('dd', [`if=${bootedImage}`, `of=${slots.a}`, 'bs=1M', 'conv=fsync', 'status=none']);
  const bootFile = join(h.dir, 'boot.json');
  const hostOS: HostOsConfig = {
    slots,
    bootloader: { type: 'file', path: bootFile },
    trialHealthTimeoutSeconds: 60,
    cmdlineKey: 'flotilla.slot',
  };
  const config = JSON.parse(await readFile(h.configPath, 'utf8')) as Record<string, unknown>;
  await writeFile(h.configPath, JSON.stringify({ ...config, hostOS }));
  const cmdline = join(h.dir, 'cmdline');
  const osReleaseFile = join(h.dir, 'os-release');
  const boot = bootSimulatorFor(bootloaderFor(hostOS));
  const children: Child[] = [];
  t.after(() => {
    for (const c of children) c.kill('SIGKILL');
  });
  const powerOn = async (version: string): Promise<Child> => {
    await writeFile(cmdline, `quiet flotilla.slot=${await boot.boot()}\n`);
    await writeFile(osReleaseFile, `PRETTY_NAME="Flotilla OS ${version}"\nVERSION_ID=${version}\n`);
    const args = { configPath: h.configPath, dataDir: h.dataDir, namespace: h.namespace, cmdline, osReleaseFile };
    const child = Object.assign(
      spawn(process.execPath, [CHILD, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] }),
      { lines: [] as string[] },
    );
    createInterface({ input: child.stdout }).on('line', (line) => child.lines.push(line));
    children.push(child);
    return child;
  };
  const kill = (child: Child) =>
    new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  const first = await powerOn('1.0.0');
  const cli = join(h.dir, 'cli');
  await flotilla(cli, ['login', '--url', h.cp.server.url, '--api-key', h.cp.adminKey]);
  const device = await waitFor(
    'the device to register',
    async () => (await flotilla<Device[]>(cli, ['device', 'list', '--fleet', h.cp.fleet.slug]))[0],
    { timeoutMs: 30_000 },
  );
  await flotilla(cli, ['os', 'release', 'push', device.deviceType, '1.0.0', pair.v1.path]);
  await flotilla(cli, ['os', 'release', 'push', device.deviceType, '2.0.0', pair.v2.path]);
  const size = pair.v2.bytes.length;
  return {
    h,
    slots,
    pair,
    size,
    device,
    first,
    powerOn,
    kill,
    update: () => flotilla(cli, ['device', 'os-update', device.uuid, '2.0.0']),
    armed: (child: Child) =>
      waitFor('the agent to arm the trial and ask for the reboot', () => child.lines.includes('reboot'), {
        timeoutMs: 120_000,
      }),
    /** Reboots into the trial; the agent there commits once healthy. */
    commits: async (child: Child) => {
      await kill(child);
      const next = await powerOn('2.0.0');
      const shown = await waitFor(
        'the server to show OS 2.0.0 committed',
        async () => {
          const s = (await h.cp.device(device.uuid)).osUpdate;
          return s?.phase === 'committed' ? s : undefined;
        },
        { timeoutMs: 90_000 },
      );
      assert.equal(shown.version, '2.0.0');
      await kill(next);
    },
    imageBytes: () => h.cp.tap.osImageDownloads.reduce((sum, d) => sum + d.bytes, 0),
    deltaBytes: () => h.cp.tap.osDeltaDownloads.reduce((sum, d) => sum + d.bytes, 0),
  };
}

/** The device's own delta ask, until the server has it ready. */
async function readyDelta(h: Harness, uuid: string, key: string, toSha256: string) {
  return waitFor(
    'the OS delta',
    async () => {
      const answer = await fetch(`${h.cp.server.url}/device/v1/${uuid}/os-deltas`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ fromVersion: '1.0.0', toSha256 }),
      });
      const body = (await answer.json()) as { status?: string; delta?: { digest: string } };
      return answer.status === 200 ? body.delta : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

describe('host OS updates by delta (real agent process, loop devices, real server)', { skip }, () => {
  it('writes 2.0.0 by delta: the slot holds the image and far fewer bytes than it came over the link', async (t) => {
    const x = await host(t);
    await x.update();
    await x.armed(x.first);
    assert.equal(await readBackDigest(x.slots.b, x.size), hexOf(x.pair.v2.bytes));
    assert.equal(await slotVersion(x.slots.b), '2.0.0');
    assert.equal(x.imageBytes(), 0, 'the full image was not downloaded');
    const delta = x.deltaBytes();
    assert.ok(delta > 0 && delta < x.size / 4, `${delta} bytes of delta for an image of ${x.size}`);
    t.diagnostic(`image ${x.size} bytes, delta downloaded ${delta} bytes`);
    assert.deepEqual(await readdir(join(x.h.dataDir, 'os-deltas')), [], 'the delta and source copy are removed');
    await x.commits(x.first);
  });

  it('a booted slot that is not the delta source: the full image, and the update commits', async (t) => {
    const x = await host(t, (v1) => {
      const changed = Buffer.from(v1);
      changed.writeUInt8(changed.readUInt8(changed.length - 100) ^ 0xff, changed.length - 100);
      return changed;
    });
    await x.update();
    await x.armed(x.first);
    assert.equal(await readBackDigest(x.slots.b, x.size), hexOf(x.pair.v2.bytes));
    assert.equal(x.deltaBytes(), 0, 'no delta downloaded for a source that does not match');
    assert.equal(x.imageBytes(), x.size);
    await x.commits(x.first);
  });

  it('a delta that does not decode: the full image in the same attempt, never again by delta; it commits', async (t) => {
    const x = await host(t);
    // The server's delta, damaged in the middle under a digest that matches it (as a bad disk on the server might):
    // the device's digest check passes, xdelta3's window checksums or the slot writer's digest do not.
    const key = JSON.parse(await readFile(x.h.configPath, 'utf8')).deviceApiKey as string;
    const delta = await readyDelta(x.h, x.device.uuid, key, hexOf(x.pair.v2.bytes));
    const root = join(x.h.cp.dataDir, 'registry', 'deltas');
    const blob = (hex: string) => join(root, 'sha256', hex.slice(0, 2), hex);
    const bytes = await readFile(blob(delta.digest.slice(7)));
    for (let i = Math.floor(bytes.length / 2); i < bytes.length / 2 + 64; i += 1)
      bytes.writeUInt8(bytes.readUInt8(i) ^ 0x5a, i);
    const damaged = hexOf(bytes);
    await mkdir(dirname(blob(damaged)), { recursive: true });
    await writeFile(blob(damaged), bytes);
    const pairFile = join(root, 'os-pairs', `${hexOf(x.pair.v1.bytes)}-${hexOf(x.pair.v2.bytes)}.json`);
    const stored = JSON.parse(await readFile(pairFile, 'utf8'));
    await writeFile(`${pairFile}.tmp`, JSON.stringify({ ...stored, digest: `sha256:${damaged}` }));
    await rename(`${pairFile}.tmp`, pairFile);

    await x.update();
    await x.armed(x.first);
    assert.equal(await readBackDigest(x.slots.b, x.size), hexOf(x.pair.v2.bytes));
    assert.equal(x.deltaBytes(), bytes.length, 'the delta was downloaded and tried');
    assert.equal(x.imageBytes(), x.size, 'then the full image, from its first byte');
    const state = JSON.parse(await readFile(join(x.h.dataDir, 'host-os-update.json'), 'utf8'));
    assert.equal(state.attempts, 1, 'in the same attempt');
    await x.commits(x.first);
  });

  it('a delta download cut by a kill -9 resumes with Range after the restart', async (t) => {
    const x = await host(t);
    const key = JSON.parse(await readFile(x.h.configPath, 'utf8')).deviceApiKey as string;
    await readyDelta(x.h, x.device.uuid, key, hexOf(x.pair.v2.bytes));
    x.h.cp.tap.stallNextDeltaDownload(4096);
    await x.update();
    await waitFor('4096 bytes of the delta on the device', () => x.deltaBytes() >= 4096, { timeoutMs: 60_000 });
    // The bytes reach the agent's file a moment after the tap passed them on.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await x.kill(x.first);
    x.h.cp.tap.releaseStalls();
    const second = await x.powerOn('1.0.0');
    await x.armed(second);
    const downloads = x.h.cp.tap.osDeltaDownloads;
    assert.equal(downloads.length, 2, JSON.stringify(downloads));
    assert.equal(downloads[1]?.range, 'bytes=4096-');
    assert.equal(downloads[1]?.status, 206);
    assert.equal(x.imageBytes(), 0);
    assert.equal(await readBackDigest(x.slots.b, x.size), hexOf(x.pair.v2.bytes));
    await x.commits(second);
  });
});
