import assert from 'node:assert/strict';
import { type ChildProcessByStdio, execFile, spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Device, OsRelease } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import { harness } from '../test-support/fixtures.js';
import { loopSlots, loopUnavailable, osImage, run, slotVersion } from '../test-support/os-slots.js';
import type { HostOsConfig } from './host-os-config.js';
import { bootloaderFor, bootSimulatorFor } from './select-bootloader.js';
import { readBackDigest } from './slot-writer.js';
import { readCheckpoint } from './write-checkpoint.js';

/**
 * Issue 17, "every download resumes after an agent restart; nothing is downloaded twice": a real agent process on an
 * A/B host (loop devices) downloads an OS release from the real server through the tap, which paces it like a slow
 * link and counts every byte it passes on. The agent is killed -9 at ~40 %; started again, it re-hashes what its
 * checkpoint says is on the slot and asks the server only for the rest (Range), then arms the trial; on the new slot
 * it commits. Bytes served over both runs: the image plus at most what came after the last checkpoint.
 */

const CLI_MAIN = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
const CHILD = fileURLToPath(new URL('../test-support/os-agent-child.js', import.meta.url));
const MIB = 1 << 20;
const skip = await loopUnavailable();

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

describe('kill -9 in the middle of an OS image download (real agent process)', { skip }, () => {
  it('the restarted agent downloads only the rest, and the update commits with the right digest', async (t) => {
    const h = await harness();
    t.after(() => h.remove());
    const slots = await loopSlots(t, h.dir, 40 << 20);
    const v1 = await osImage(h.dir, '1.0.0', 8);
    await run('dd', [`if=${v1.path}`, `of=${slots.a}`, 'bs=1M', 'conv=fsync', 'status=none']);
    const v2 = await osImage(h.dir, '2.0.0', 16);
    const size = v2.target.size;
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
    const killed = (child: Child) =>
      new Promise<NodeJS.Signals | null>((resolve) => {
        child.once('exit', (_code, signal) => resolve(signal));
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
    await flotilla<OsRelease>(cli, ['os', 'release', 'push', device.deviceType, '2.0.0', v2.path]);
    // ~1.6 MB/s: the 16 MiB image takes about 10 s, time enough to kill the agent in the middle; and a MiB takes
    // longer than the writer's least time between checkpoints, so it keeps one per MiB (checkpointEvery(16 MiB)).
    h.cp.tap.paceOsImages(64 << 10, 40);
    await flotilla(cli, ['device', 'os-update', device.uuid, '2.0.0']);
    const served = () => h.cp.tap.osImageDownloads.reduce((sum, d) => sum + d.bytes, 0);
    await waitFor('40 % of the image served', () => served() >= 0.4 * size, { timeoutMs: 60_000, intervalMs: 20 });
    assert.equal(await killed(first), 'SIGKILL');
    const servedBeforeKill = served();
    assert.ok(servedBeforeKill < size, `killed in the middle (${servedBeforeKill} of ${size} bytes served)`);
    const checkpoint = await readCheckpoint(join(h.dataDir, 'host-os-write.json'));
    assert.ok(checkpoint && checkpoint.bytes > 0 && checkpoint.sha256 === v2.target.sha256, 'a checkpoint was kept');
    assert.equal(JSON.parse(await readFile(join(h.dataDir, 'host-os-update.json'), 'utf8')).phase, 'writing');

    // The agent starts again on the old slot (a restart, or a power cut: the bootloader was never armed).
    const restartedAt = Date.now();
    const reportsBefore = h.cp.tap.reports.length;
    const second = await powerOn('1.0.0');
    await waitFor(
      'the restarted agent to arm the trial and ask for the reboot',
      () => second.lines.includes('reboot'),
      {
        timeoutMs: 90_000,
      },
    );
    const resumeSeconds = (Date.now() - restartedAt) / 1000;
    const downloads = h.cp.tap.osImageDownloads;
    assert.equal(downloads.length, 2, 'one request per run');
    assert.equal(downloads[0]?.range, undefined);
    assert.equal(downloads[1]?.range, `bytes=${checkpoint.bytes}-`, 'the second run asks from its checkpoint');
    assert.equal(downloads[1]?.status, 206);
    assert.equal(downloads[1]?.bytes, size - checkpoint.bytes, 'and gets only the rest');
    const total = served();
    // Downloaded twice: only what came after the last checkpoint (a MiB here) and had not reached the next one.
    assert.ok(total <= size + 2 * MIB, `${total} bytes served for an image of ${size}`);
    t.diagnostic(
      `image ${size} bytes; served ${servedBeforeKill} before the kill, checkpoint at ${checkpoint.bytes}, ` +
        `${total - servedBeforeKill} after; total ${total} (${((total / size) * 100).toFixed(1)} % of the image); ` +
        `restart to armed ${resumeSeconds.toFixed(1)} s`,
    );
    assert.equal(await readBackDigest(slots.b, size), v2.target.sha256);
    assert.equal(await slotVersion(slots.b), '2.0.0');
    // Progress after the restart starts where the slot was: no report counts up again from 0.
    const resumedPercent = Math.floor((checkpoint.bytes / size) * 100);
    const progress = h.cp.tap.reports
      .slice(reportsBefore)
      .map((r) => r.body[device.uuid]?.os_update)
      .filter((u) => u?.phase === 'writing' && typeof u.progress === 'number')
      .map((u) => u?.progress as number);
    assert.ok(
      progress.every((p) => p === 0 || p >= resumedPercent),
      `progress ${progress} after resuming at ${resumedPercent} %`,
    );
    assert.ok(
      progress.some((p) => p >= resumedPercent && p < 100),
      // Reports carry the engine's state: without a running Docker engine there are none.
      `progress [${progress}] was reported while writing (${h.cp.tap.reports.length - reportsBefore} reports)`,
    );
    await killed(second);

    // The reboot: the bootloader starts slot b for its one trial; the agent there commits once healthy.
    const third = await powerOn('2.0.0');
    assert.equal(await readFile(cmdline, 'utf8'), 'quiet flotilla.slot=b\n');
    const committed = await waitFor(
      'the server to show OS 2.0.0 committed',
      async () => {
        const shown = (await h.cp.device(device.uuid)).osUpdate;
        return shown?.phase === 'committed' ? shown : undefined;
      },
      { timeoutMs: 90_000 },
    );
    assert.equal(committed.version, '2.0.0');
    assert.deepEqual(JSON.parse(await readFile(bootFile, 'utf8')), { committed: 'b', trial: null });
    assert.equal(h.cp.tap.osImageDownloads.length, 2, 'nothing downloaded after the write');
    await readCheckpoint(join(h.dataDir, 'host-os-write.json')).then((c) => assert.equal(c, undefined));
    await killed(third);
  });
});
