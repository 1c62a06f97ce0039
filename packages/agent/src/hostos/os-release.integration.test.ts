import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Device, OsRelease } from '@flotilla/protocol';
import { startServer } from '@flotilla/server';
import { tempDir, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import type { HostPower } from '../host/host-power.js';
import { loopSlots, loopUnavailable, osImage, run, slotVersion } from '../test-support/os-slots.js';
import type { HostOsConfig } from './host-os-config.js';
import { bootloaderFor, bootSimulatorFor } from './select-bootloader.js';

/**
 * Issue 17 end to end: the real CLI pushes an OS release (an ext4 image made with mkfs.ext4 -d) into the server's
 * registry and points a device at it; an agent on an A/B host (two loop devices, the file bootloader) downloads it
 * from the server with its key, writes the inactive slot, "reboots" (the test powers the simulated device on again:
 * the bootloader's choice becomes the kernel command line the next agent reads), passes its trial and commits, and
 * the server shows the update committed.
 */

const CLI_MAIN = fileURLToPath(new URL('../../../cli/dist/main.js', import.meta.url));
const skip = await loopUnavailable();

function flotilla(configDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      { env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir }, timeout: 120_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

async function flotillaJson<T>(configDir: string, args: string[]): Promise<T> {
  const result = await flotilla(configDir, [...args, '--json']);
  assert.equal(result.code, 0, `flotilla ${args.join(' ')}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

describe('host OS release from the CLI to a committed A/B update', { skip }, () => {
  it('pushes, sets the device OS, writes, reboots into the trial, commits; the server shows it', async (t) => {
    const dir = await tempDir('flotilla-os-e2e-');
    t.after(() => dir.remove());
    const server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    const cli = join(dir.path, 'cli');
    assert.equal(
      (await flotilla(cli, ['login', '--url', server.url, '--api-key', server.admin?.apiKey ?? ''])).code,
      0,
    );
    const fleet = `os-${process.pid}`;
    await flotillaJson(cli, ['fleet', 'create', 'OS', '--slug', fleet]);
    const configPath = join(dir.path, 'config.json');
    await flotillaJson(cli, ['os', 'config', fleet, '-o', configPath]);

    // The A/B host: OS 1.0.0 on slot a, committed; config.json names the slots and the bootloader.
    const slots = await loopSlots(t, dir.path, 24 << 20);
    const v1 = await osImage(dir.path, '1.0.0', 8);
    await run('dd', [`if=${v1.path}`, `of=${slots.a}`, 'bs=1M', 'conv=fsync', 'status=none']);
    const hostOS: HostOsConfig = {
      slots,
      bootloader: { type: 'file', path: join(dir.path, 'boot.json') },
      trialHealthTimeoutSeconds: 30,
      cmdlineKey: 'flotilla.slot',
    };
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    await writeFile(configPath, JSON.stringify({ ...config, hostOS }));
    // What the booted slot's /etc/os-release says: the OS the device reports, and the version it runs.
    const osReleaseFile = join(dir.path, 'os-release');
    const bootedOs = (version: string) =>
      writeFile(osReleaseFile, `PRETTY_NAME="Flotilla OS ${version}"\nVERSION_ID=${version}\n`);
    await bootedOs('1.0.0');
    const cmdline = join(dir.path, 'cmdline');
    const boot = bootSimulatorFor(bootloaderFor(hostOS));
    let reboots = 0;
    const power: HostPower = {
      mode: 'dry-run',
      reboot: async () => {
        reboots++;
      },
      shutdown: async () => undefined,
      identify: async () => undefined,
    };
    let agent: AgentHandle | undefined;
    t.after(() => agent?.stop());
    const powerOn = async () => {
      await writeFile(cmdline, `quiet flotilla.slot=${await boot.boot()}\n`);
      agent = await startAgent({
        configPath,
        dataDir: join(dir.path, 'agent'),
        namespace: `os${process.pid}x`,
        pollIntervalMs: 300,
        reportIntervalMs: 100,
        apiPort: 0,
        hostOsCmdline: cmdline,
        osReleaseFile,
        hostPower: power,
        logLevel: process.env.FLOTILLA_TEST_LOG ?? 'warn',
      });
    };
    await powerOn();
    const device = await waitFor(
      'the device to register',
      async () => (await flotillaJson<Device[]>(cli, ['device', 'list', '--fleet', fleet]))[0],
      { timeoutMs: 30_000 },
    );

    assert.equal(device.osVersion, 'Flotilla OS 1.0.0', 'registered with the name its os-release gives');

    // The version the device was flashed with: nothing to write, no reboot.
    await flotillaJson(cli, ['os', 'release', 'push', device.deviceType, '1.0.0', v1.path]);
    await flotillaJson(cli, ['device', 'os-update', device.uuid, '1.0.0']);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    assert.equal(reboots, 0, 'OS 1.0.0 already runs');
    assert.notEqual((await flotillaJson<Device>(cli, ['device', 'info', device.uuid])).osUpdate?.phase, 'writing');

    const v2 = await osImage(dir.path, '2.0.0', 8);
    const pushed = await flotillaJson<OsRelease>(cli, ['os', 'release', 'push', device.deviceType, '2.0.0', v2.path]);
    assert.equal(pushed.sha256, v2.target.sha256);
    assert.equal(pushed.size, v2.target.size);
    const listed = await flotillaJson<OsRelease[]>(cli, ['os', 'release', 'list', device.deviceType]);
    assert.deepEqual(
      listed.map((r) => r.version),
      ['2.0.0', '1.0.0'],
    );
    const again = await flotilla(cli, ['os', 'release', 'push', device.deviceType, '2.0.0', v1.path]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\(OS_RELEASE_EXISTS\)/);
    const unknown = await flotilla(cli, ['device', 'os-update', device.uuid, '9.9.9']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /\(OS_RELEASE_NOT_FOUND\)/);
    await flotillaJson(cli, ['device', 'os-update', device.uuid, '2.0.0']);

    // The agent writes slot b from the server, arms the trial and asks for the reboot.
    await waitFor('the agent to ask for the reboot into OS 2.0.0', () => reboots === 1, { timeoutMs: 60_000 });
    assert.equal(await slotVersion(slots.b), '2.0.0');
    await waitFor(
      'the server to show the update armed',
      async () => (await flotillaJson<Device>(cli, ['device', 'info', device.uuid])).osUpdate?.phase === 'armed',
      { timeoutMs: 30_000 },
    );
    await agent?.stop();
    agent = undefined;

    // The reboot: the bootloader starts slot b for its one trial; the agent there commits once healthy.
    await bootedOs('2.0.0');
    await powerOn();
    assert.equal(await readFile(cmdline, 'utf8'), 'quiet flotilla.slot=b\n');
    const committed = await waitFor(
      'the server to show OS 2.0.0 committed',
      async () => {
        const shown = (await flotillaJson<Device>(cli, ['device', 'info', device.uuid])).osUpdate;
        return shown?.phase === 'committed' ? shown : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(committed.version, '2.0.0');
    await waitFor(
      'the device to report the OS it booted',
      async () => (await flotillaJson<Device>(cli, ['device', 'info', device.uuid])).osVersion === 'Flotilla OS 2.0.0',
      { timeoutMs: 30_000 },
    );
    assert.equal((await flotillaJson<Device>(cli, ['device', 'info', device.uuid])).targetOs, '2.0.0');
    assert.deepEqual(JSON.parse(await readFile(join(dir.path, 'boot.json'), 'utf8')), { committed: 'b', trial: null });
    // The target still names 2.0.0: the committed OS is not installed again.
    (agent as AgentHandle | undefined)?.triggerUpdate();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal(reboots, 1);
  });
});
