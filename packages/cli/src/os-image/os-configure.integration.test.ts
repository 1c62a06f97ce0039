import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { startServer } from '@flotilla/server';
import type { RunningServer } from '@flotilla/server';
import { tempDir } from '@flotilla/testkit';
import { CLI_MAIN, flotilla, flotillaJson } from '../test-support/cli-runner.js';
import { DiskImage } from './disk-image.js';
import { Ext4Files } from './ext4-files.js';
import { FatFilesystem } from './fat-filesystem.js';
import type { Region } from './fat-volume.js';

/**
 * `flotilla os configure` / `os read-config` on disk images made here with sfdisk and mkfs.vfat in sparse files, read
 * back with mtools and checked with `fsck.vfat -n`: tools that share no code with the writer.
 */

const run = promisify(execFile);
const MiB = 1024 * 1024;
let dir: { path: string; remove: () => Promise<void> };
let configDir: string;
let n = 0;

interface ImageSpec {
  scheme?: 'dos' | 'gpt';
  fat?: 12 | 16 | 32;
  /** FAT12/16 root folder entries (mkfs.vfat -r). */
  rootEntries?: number;
  label?: string;
  /** GPT partition name of the FAT partition. */
  name?: string;
  /** The FAT partition is the second; the first is left without a filesystem. */
  second?: boolean;
  /** No FAT filesystem at all. */
  noFat?: boolean;
  sizeMiB?: number;
}

/** A sparse disk image; returns its path and the FAT partition's byte offset. */
async function makeImage(spec: ImageSpec = {}): Promise<{ path: string; offset: number; sizeMiB: number }> {
  const path = join(dir.path, `image-${++n}.img`);
  const sizeMiB = spec.sizeMiB ?? (spec.fat === 32 ? 36 : 8);
  const scheme = spec.scheme ?? 'dos';
  const startMiB = spec.second ? 2 : 1;
  await run('truncate', ['-s', `${startMiB + sizeMiB + 2}M`, path]);
  const mbrType = spec.fat === 32 ? 'c' : spec.fat === 12 ? '1' : 'e';
  const fatType = scheme === 'gpt' ? 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7' : mbrType;
  const nameField = spec.name ? `, name="${spec.name}"` : '';
  const lines = [`label: ${scheme}`];
  if (spec.second)
    lines.push(`start=2048, size=2048, type=${scheme === 'gpt' ? '0FC63DAF-8483-4772-8E79-3D69D8477DE4' : '83'}`);
  lines.push(`start=${startMiB * 2048}, size=${sizeMiB * 2048}, type=${fatType}${nameField}`);
  await sfdisk(path, `${lines.join('\n')}\n`);
  const offset = startMiB * MiB;
  if (!spec.noFat) {
    const args = ['-F', String(spec.fat ?? 16), '--offset', String(offset / 512)];
    args.push('-s', '1');
    if (spec.rootEntries) args.push('-r', String(spec.rootEntries));
    if (spec.label) args.push('-n', spec.label);
    await run('mkfs.vfat', [...args, path, String(sizeMiB * 1024)]);
  }
  return { path, offset, sizeMiB };
}

function sfdisk(path: string, script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('sfdisk', ['-q', path], (error) => (error ? reject(error) : resolve()));
    child.stdin?.end(script);
  });
}

const at = (image: { path: string; offset: number }) => `${image.path}@@${image.offset}`;

async function mdir(image: { path: string; offset: number }, folder = '::/'): Promise<string> {
  return (await run('mdir', ['-i', at(image), '-a', folder])).stdout;
}

async function mtype(image: { path: string; offset: number }, file: string): Promise<string> {
  return (await run('mtype', ['-i', at(image), `::/${file}`])).stdout;
}

/** `fsck.vfat -n` on a sparse copy of the partition (it takes no offset); rejects unless it finds nothing wrong. */
async function fsckClean(image: { path: string; offset: number; sizeMiB: number }): Promise<void> {
  const copy = `${image.path}.part`;
  await run('dd', [
    `if=${image.path}`,
    `of=${copy}`,
    'bs=1M',
    `skip=${image.offset / MiB}`,
    `count=${image.sizeMiB}`,
    'conv=sparse',
    'status=none',
  ]);
  const { stdout } = await run('fsck.vfat', ['-n', copy]);
  assert.doesNotMatch(stdout, /differ|lost|free cluster summary|invalid|orphan/i, stdout);
}

async function sha(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

const baseConfig = {
  applicationName: 'kitchen',
  deviceType: 'raspberrypi4-64',
  apiEndpoint: 'https://flotilla.example',
  provisioningApiKey: 'prov-key-secret-0123456789',
};
let configFile: string;

before(async () => {
  dir = await tempDir('flotilla-os-image-');
  configDir = join(dir.path, 'cli');
  configFile = join(dir.path, 'config.json');
  await writeFile(configFile, JSON.stringify(baseConfig));
});

after(async () => {
  await dir?.remove();
});

// The tests use files of their own and are independent: run side by side, they take seconds, not a minute.
describe('os configure --config', { concurrency: true }, () => {
  test('MBR + FAT16 resin-boot: config.json and a WiFi keyfile that mtools reads back; fsck clean', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const r = await flotilla(configDir, [
      'os',
      'configure',
      image.path,
      '--config',
      configFile,
      '--hostname',
      'probe-1',
      '--ssh-key',
      'ssh-ed25519 AAAAC3 one@example',
      '--persistent-logging',
      '--dev',
      '--wifi-ssid',
      'Kitchen WiFi',
      '--wifi-key',
      'correct-horse',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /boot partition 1 \(FAT16, label resin-boot\)/);
    const written = JSON.parse(await mtype(image, 'config.json'));
    assert.deepEqual(written, {
      ...baseConfig,
      hostname: 'probe-1',
      developmentMode: true,
      persistentLogging: true,
      os: {
        sshKeys: ['ssh-ed25519 AAAAC3 one@example'],
        network: { wifi: { ssid: 'Kitchen WiFi', psk: 'correct-horse' } },
      },
    });
    assert.match(await mdir(image), /config\.json/);
    const keyfile = await mtype(image, 'system-connections/flotilla-wifi');
    assert.match(keyfile, /^\[connection\]\n/);
    assert.match(keyfile, /\nssid=Kitchen WiFi\n/);
    assert.match(keyfile, /\npsk=correct-horse\n/);
    assert.match(keyfile, /\[ipv4\]\nmethod=auto/);
    await fsckClean(image);
  });

  test('running twice replaces config.json and the keyfile, never duplicates, and leaks no cluster', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    // As a balenaOS image ships: a config.json and system-connections/ with a sample, written here by mtools.
    const shipped = join(dir.path, 'shipped');
    await run('mkdir', [shipped]);
    await writeFile(join(shipped, 'config.json'), '{"deviceType":"raspberrypi4-64"}');
    await writeFile(join(shipped, 'resin-sample.ignore'), '[connection]\n');
    await run('mcopy', ['-i', at(image), join(shipped, 'config.json'), '::/config.json']);
    await run('mmd', ['-i', at(image), '::/system-connections']);
    await run('mcopy', ['-i', at(image), join(shipped, 'resin-sample.ignore'), '::/system-connections/']);
    const configure = (ssid: string) =>
      flotilla(configDir, ['os', 'configure', image.path, '--config', configFile, '--wifi-ssid', ssid]);
    assert.equal((await configure('first')).code, 0);
    const free = (listing: string) => /([\d ]+) bytes free/.exec(listing)?.[1];
    const freeAfterFirst = free(await mdir(image));
    const second = await configure('second');
    assert.equal(second.code, 0, second.stderr);
    const root = await mdir(image);
    assert.equal(root.match(/config\.json/g)?.length, 1, root);
    assert.equal(root.match(/system-connections/g)?.length, 1, root);
    const connections = await mdir(image, '::/system-connections');
    assert.equal(connections.match(/flotilla-wifi/g)?.length, 1, connections);
    assert.match(connections, /resin-sample\.ignore/);
    assert.deepEqual(JSON.parse(await mtype(image, 'config.json')).provisioningApiKey, baseConfig.provisioningApiKey);
    assert.match(await mtype(image, 'system-connections/flotilla-wifi'), /\nssid=second\n/);
    assert.equal(free(root), freeAfterFirst);
    await fsckClean(image);
  });

  test('GPT + FAT32 as the second partition, named resin-boot; a config.json spanning many clusters', async () => {
    const image = await makeImage({ scheme: 'gpt', fat: 32, name: 'resin-boot', second: true });
    const keys = Array.from({ length: 40 }, (_, i) => `ssh-ed25519 ${'A'.repeat(60)}${i} key${i}@example`);
    const r = await flotilla(configDir, [
      'os',
      'configure',
      image.path,
      '--config',
      configFile,
      '--prod',
      ...keys.flatMap((key) => ['--ssh-key', key]),
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const result = JSON.parse(r.stdout);
    assert.equal(result.partition.index, 2);
    assert.equal(result.partition.scheme, 'gpt');
    assert.equal(result.partition.fat, 32);
    const written = JSON.parse(await mtype(image, 'config.json'));
    assert.deepEqual(written.os.sshKeys, keys);
    assert.equal(written.developmentMode, false);
    await fsckClean(image);
  });

  test('without a known label the first FAT partition is used; -o configures a 0600 copy, not the original', async () => {
    const image = await makeImage({ fat: 32, label: 'STUFF' });
    const original = await sha(image.path);
    const copy = { ...image, path: join(dir.path, 'copy.img') };
    const r = await flotillaJson<{ image: string; partition: { index: number; label: string } }>(configDir, [
      'os',
      'configure',
      image.path,
      '--config',
      configFile,
      '-o',
      copy.path,
    ]);
    assert.deepEqual([r.image, r.partition.index, r.partition.label], [copy.path, 1, 'STUFF']);
    assert.deepEqual(JSON.parse(await mtype(copy, 'config.json')), baseConfig);
    assert.equal((await stat(copy.path)).mode & 0o777, 0o600);
    assert.equal(await sha(image.path), original);
    await fsckClean(copy);
  });

  test('FAT12 (a tiny boot partition) works too', async () => {
    const image = await makeImage({ fat: 12, sizeMiB: 2, label: 'boot' });
    const r = await flotillaJson<{ partition: { fat: number } }>(configDir, [
      'os',
      'configure',
      image.path,
      '--config',
      configFile,
      '--wifi-ssid',
      'tiny',
    ]);
    assert.equal(r.partition.fat, 12);
    assert.deepEqual(JSON.parse(await mtype(image, 'config.json')), {
      ...baseConfig,
      os: { network: { wifi: { ssid: 'tiny' } } },
    });
    assert.match(await mtype(image, 'system-connections/flotilla-wifi'), /\nssid=tiny\n/);
    await fsckClean(image);
  });

  test('a FAT32 root folder that is full grows by a cluster; the files already there stay', async () => {
    const image = await makeImage({ fat: 32, label: 'resin-boot' });
    const names = [1, 2, 3, 4].map((i) => `long-file-name-${i}.txt`);
    for (const name of names) {
      const source = join(dir.path, name);
      await writeFile(source, `${name}\n`);
      await run('mcopy', ['-i', at(image), source, `::/${name}`]);
    }
    const r = await flotilla(configDir, ['os', 'configure', image.path, '--config', configFile, '--wifi-ssid', 'x']);
    assert.equal(r.code, 0, r.stderr);
    const root = await mdir(image);
    for (const name of [...names, 'config.json', 'system-connections']) assert.match(root, new RegExp(name), root);
    assert.equal(await mtype(image, names[3] as string), `${names[3]}\n`);
    assert.equal(JSON.parse(await mtype(image, 'config.json')).applicationName, baseConfig.applicationName);
    await fsckClean(image);
  });

  test('a failure at any write while replacing config.json leaves the old one readable', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const old = join(dir.path, 'old.json');
    await writeFile(old, JSON.stringify({ ...baseConfig, hostname: 'old' }));
    assert.equal((await flotilla(configDir, ['os', 'configure', image.path, '--config', old])).code, 0);
    const configured = await readFile(image.path);
    const partition = () => Buffer.from(configured.subarray(image.offset, image.offset + image.sizeMiB * MiB));
    const bigger = Buffer.from(JSON.stringify({ ...baseConfig, hostname: 'new', os: { sshKeys: ['k'.repeat(3000)] } }));
    const seen: string[] = [];
    let failAt = 1;
    for (; failAt < 50; failAt++) {
      const bytes = partition();
      let writes = 0;
      const region: Region = {
        size: bytes.length,
        read: (position, length) => Buffer.from(bytes.subarray(position, position + length)),
        write: (position, data) => {
          if (++writes === failAt) throw new Error('disk gone');
          data.copy(bytes, position);
        },
      };
      const fs = FatFilesystem.open(region) as FatFilesystem;
      try {
        fs.writeFile('config.json', bigger);
        break; // failAt is past the last write: every earlier write was interrupted in its turn
      } catch (error) {
        assert.equal((error as Error).message, 'disk gone');
      }
      const copy = { ...image, path: join(dir.path, `crash-${failAt}.img`) };
      const whole = Buffer.from(configured);
      bytes.copy(whole, image.offset);
      await writeFile(copy.path, whole);
      seen.push(JSON.parse(await mtype(copy, 'config.json')).hostname);
      assert.equal((await mdir(copy)).match(/config\.json/g)?.length, 1);
      await run('rm', [copy.path]);
    }
    assert.ok(failAt > 4 && failAt < 50, `interrupted each of ${failAt - 1} writes`);
    // Until the directory entry is switched the old file is what is read; after it, the new one; never anything else.
    const switched = seen.indexOf('new');
    assert.ok(switched > 0, seen.join());
    assert.deepEqual(seen, [...Array(switched).fill('old'), ...Array(seen.length - switched).fill('new')]);
  });

  test('read-config redacts keys and the WiFi passphrase unless --show-secrets', async () => {
    const image = await makeImage({ label: 'flash-boot' });
    const args = [
      'os',
      'configure',
      image.path,
      '--config',
      configFile,
      '--wifi-ssid',
      'net',
      '--wifi-key',
      'passphrase-1',
    ];
    assert.equal((await flotilla(configDir, args)).code, 0);
    const hidden = await flotilla(configDir, ['os', 'read-config', image.path]);
    assert.equal(hidden.code, 0, hidden.stderr);
    assert.doesNotMatch(hidden.stdout, /prov-key-secret|passphrase-1/);
    assert.match(hidden.stdout, /"provisioningApiKey": "<redacted>"/);
    assert.match(hidden.stdout, /psk=<redacted>/);
    const shown = await flotillaJson<{ config: typeof baseConfig; connections: { file: string; text: string }[] }>(
      configDir,
      ['os', 'read-config', image.path, '--show-secrets'],
    );
    assert.equal(shown.config.provisioningApiKey, baseConfig.provisioningApiKey);
    assert.deepEqual(
      shown.connections.map((c) => c.file),
      ['system-connections/flotilla-wifi'],
    );
    assert.match(shown.connections[0]?.text ?? '', /psk=passphrase-1/);
  });

  test('an .img.gz is configured into a new uncompressed .img next to it, created 0600; the download is untouched', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const gz = `${image.path}.gz`;
    await writeFile(gz, gzipSync(await readFile(image.path)));
    const before = await sha(gz);
    await run('rm', [image.path]);
    const r = await flotilla(configDir, ['os', 'configure', gz, '--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /decompressed .*\.img\.gz to .*\.img/);
    assert.equal((await stat(image.path)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(await mtype(image, 'config.json')), baseConfig);
    assert.equal(await sha(gz), before);
    const again = await flotilla(configDir, ['os', 'configure', gz, '--config', configFile]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists.*\(VALIDATION_FAILED\)/);
    // The download itself holds no config.json; read-config reads it through a temporary copy.
    const read = await flotillaJson<{ config?: unknown; partition: { label: string } }>(configDir, [
      'os',
      'read-config',
      gz,
    ]);
    assert.deepEqual([read.config, read.partition.label], [undefined, 'resin-boot']);
  });
});

test('a .zip holding one .img is configured into a new .img', async () => {
  const image = await makeImage({ fat: 32, label: 'resin-boot' });
  const zip = join(dir.path, 'download.zip');
  await run('zip', ['-q', '-j', zip, image.path]);
  const r = await flotillaJson<{ image: string; extractedFrom: string }>(configDir, [
    'os',
    'configure',
    zip,
    '--config',
    configFile,
  ]);
  assert.deepEqual([r.image, r.extractedFrom], [join(dir.path, 'download.img'), zip]);
  assert.deepEqual(JSON.parse(await mtype({ path: r.image, offset: image.offset }, 'config.json')), baseConfig);
});

describe('os configure refuses', { concurrency: true }, () => {
  const refuse = async (args: string[], code: string, message: RegExp) => {
    const r = await flotilla(configDir, ['os', 'configure', ...args]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`\\(${code}\\)`), r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  };

  test('a file that is not a disk image', async () => {
    const text = join(dir.path, 'notes.img');
    await writeFile(text, 'just some notes\n'.repeat(100));
    await refuse([text, '--config', configFile], 'DISK_IMAGE_INVALID', /not a disk image/);
  });

  test('a partition running past the end of the file (truncated download)', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    await run('truncate', ['-s', '4M', image.path]);
    await refuse([image.path, '--config', configFile], 'DISK_IMAGE_INVALID', /past the end/);
  });

  test('a GPT whose partition entries were changed after their checksum', async () => {
    const image = await makeImage({ scheme: 'gpt', label: 'resin-boot' });
    const handle = await open(image.path, 'r+');
    // The first entry's name (sector 2, byte 56 on): one byte more, so the entries no longer match their CRC32.
    await handle.write(Buffer.from('X'), 0, 1, 2 * 512 + 56);
    await handle.close();
    await refuse([image.path, '--config', configFile], 'DISK_IMAGE_INVALID', /CRC32/);
  });

  test('no FAT partition (also from a .gz, whose decompressed copy is then removed)', async () => {
    const image = await makeImage({ noFat: true });
    await refuse([image.path, '--config', configFile], 'BOOT_PARTITION_NOT_FOUND', /no FAT partition/);
    const gz = join(dir.path, 'nofat.img.gz');
    await writeFile(gz, gzipSync(await readFile(image.path)));
    await refuse([gz, '--config', configFile], 'BOOT_PARTITION_NOT_FOUND', /no FAT partition/);
    await assert.rejects(stat(join(dir.path, 'nofat.img')), { code: 'ENOENT' });
  });

  test('a full boot partition, leaving the image byte for byte as it was', async () => {
    const image = await makeImage({ label: 'resin-boot', sizeMiB: 4 });
    const free = Number(/([\d ]+) bytes free/.exec(await mdir(image))?.[1]?.replace(/ /g, ''));
    assert.ok(free > 0);
    const filler = join(dir.path, 'filler');
    await run('truncate', ['-s', String(free), filler]);
    await run('mcopy', ['-i', at(image), filler, '::/filler']);
    assert.match(await mdir(image), / 0 bytes free/);
    const before = await sha(image.path);
    await refuse([image.path, '--config', configFile], 'BOOT_PARTITION_FULL', /bytes free/);
    assert.equal(await sha(image.path), before);
  });

  test('a full fixed FAT16 root folder, leaving the image byte for byte as it was', async () => {
    const image = await makeImage({ label: 'resin-boot', rootEntries: 16 });
    for (let i = 1; i <= 15; i++) {
      const source = join(dir.path, `F${i}`);
      await writeFile(source, 'x');
      await run('mcopy', ['-o', '-i', at(image), source, `::/F${i}`]);
    }
    const before = await sha(image.path);
    await refuse([image.path, '--config', configFile], 'BOOT_PARTITION_FULL', /root folder/);
    assert.equal(await sha(image.path), before);
  });

  test('bad flags, each with a clear message and a stable code', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const bad = join(dir.path, 'bad.json');
    await writeFile(bad, '{"uuid": 5}');
    await Promise.all([
      refuse([image.path], 'VALIDATION_FAILED', /exactly one of --fleet/),
      refuse([image.path, '--config', configFile, '--dev', '--prod'], 'VALIDATION_FAILED', /--dev and --prod/),
      refuse([image.path, '--config', configFile, '--wifi-key', 'abcdefgh'], 'VALIDATION_FAILED', /needs --wifi-ssid/),
      refuse(
        [image.path, '--config', configFile, '--wifi-ssid', 'x', '--wifi-key', 'short'],
        'VALIDATION_FAILED',
        /8-63 printable/,
      ),
      refuse([image.path, '--config', configFile, '--hostname', 'bad_host'], 'VALIDATION_FAILED', /hostname/),
      refuse([image.path, '--config', configFile, '--poll-interval', 'soon'], 'VALIDATION_FAILED', /poll-interval/),
      refuse([image.path, '--config', bad], 'INVALID_CONFIG_JSON', /uuid/),
      refuse([join(dir.path, 'missing.img'), '--config', configFile], 'VALIDATION_FAILED', /no such file/),
    ]);
  });

  test('an image attached to a loop device', async (t) => {
    const image = await makeImage({ label: 'resin-boot' });
    const attached = await run('losetup', ['-f', '--show', image.path]).catch(() => undefined);
    if (!attached) {
      // Loop devices are the kernel's (and need root): no package install gives them to a machine without.
      t.skip('losetup could not attach a loop device on this machine');
      return;
    }
    const device = attached.stdout.trim();
    try {
      await refuse([image.path, '--config', configFile], 'DISK_IMAGE_IN_USE', /attached to \/dev\/loop/);
    } finally {
      await run('losetup', ['-d', device]);
    }
  });
});

/** Runs `fdisk -b <sector>` on `path` with `commands` on stdin: sfdisk (2.38) cannot make a table of another sector size. */
function fdisk(path: string, sector: number, commands: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile('fdisk', ['-b', String(sector), path], (error) => (error ? reject(error) : resolve()));
    child.stdin?.end(`${commands.join('\n')}\n`);
  });
}

/** An ext4 filesystem labelled resin-data at byte `offset`, `sizeMiB` big. */
async function mkext4(path: string, offset: number, sizeMiB: number): Promise<void> {
  await run('mkfs.ext4', ['-q', '-F', '-L', 'resin-data', '-E', `offset=${offset}`, path, `${sizeMiB}M`]);
}

/** The data partition as preload finds it, written into with debugfs and checked with `e2fsck -fn`. */
async function dataPartitionWorks(path: string, offset: number): Promise<void> {
  const disk = DiskImage.open(path, false);
  let found: ReturnType<DiskImage['dataPartition']>;
  try {
    found = disk.dataPartition();
  } finally {
    disk.close();
  }
  assert.equal(found.partition.offset, offset);
  assert.equal(found.ext4.label, 'resin-data');
  const source = `${path}.payload`;
  await writeFile(source, 'preloaded\n');
  const files = new Ext4Files(path, offset);
  await files.mkdirs('flotilla/preload');
  await files.write(source, 'flotilla/preload/manifest.json');
  const { stdout } = await run('debugfs', ['-R', 'cat flotilla/preload/manifest.json', `${path}?offset=${offset}`]);
  assert.equal(stdout, 'preloaded\n');
  await run('e2fsck', ['-fn', `${path}?offset=${offset}`]);
}

describe('4Kn disks and logical partitions', { concurrency: true }, () => {
  const configure = async (path: string) => {
    const r = await flotillaJson<{ partition: { index: number; scheme: string; offset: number } }>(configDir, [
      'os',
      'configure',
      path,
      '--config',
      configFile,
      '--wifi-ssid',
      'far',
    ]);
    return r.partition;
  };
  const readBack = async (image: { path: string; offset: number; sizeMiB: number }) => {
    assert.deepEqual(JSON.parse(await mtype(image, 'config.json')), {
      ...baseConfig,
      os: { network: { wifi: { ssid: 'far' } } },
    });
    assert.match(await mtype(image, 'system-connections/flotilla-wifi'), /\nssid=far\n/);
    await fsckClean(image);
  };

  test('GPT with 4096-byte sectors: boot FAT (4096-byte FAT sectors) configured, data ext4 found', async () => {
    const path = join(dir.path, `image-${++n}.img`);
    await run('truncate', ['-s', '64M', path]);
    // p1: 16 MiB basic data at LBA 256 (1 MiB), p2: 32 MiB Linux at LBA 4352 (17 MiB); names set in expert mode.
    await fdisk(path, 4096, [
      'g',
      'n',
      '1',
      '256',
      '+16M',
      't',
      '11',
      'n',
      '2',
      '',
      '+32M',
      't',
      '2',
      '20',
      'x',
      'n',
      '1',
      'resin-boot',
      'n',
      '2',
      'resin-data',
      'r',
      'w',
    ]);
    const boot = { path, offset: 256 * 4096, sizeMiB: 16 };
    await run('mkfs.vfat', ['-F', '16', '-S', '4096', '-s', '1', '-n', 'RESIN-BOOT', '--offset', '256', path, '16384']);
    await mkext4(path, 4352 * 4096, 32);
    assert.deepEqual(await configure(path), {
      index: 1,
      scheme: 'gpt',
      offset: boot.offset,
      label: 'RESIN-BOOT',
      fat: 16,
    });
    await readBack(boot);
    await dataPartitionWorks(path, 4352 * 4096);
  });

  test('MBR with 4096-byte sectors', async () => {
    const path = join(dir.path, `image-${++n}.img`);
    await run('truncate', ['-s', '24M', path]);
    await fdisk(path, 4096, ['o', 'n', 'p', '1', '256', '+16M', 't', 'e', 'w']);
    const boot = { path, offset: 256 * 4096, sizeMiB: 16 };
    await run('mkfs.vfat', ['-F', '16', '-S', '4096', '-s', '1', '-n', 'resin-boot', '--offset', '256', path, '16384']);
    const partition = await configure(path);
    assert.deepEqual([partition.index, partition.scheme, partition.offset], [1, 'mbr', boot.offset]);
    await readBack(boot);
  });

  test('MBR logical partitions: boot FAT as logical 5, data ext4 as logical 6', async () => {
    const path = join(dir.path, `image-${++n}.img`);
    await run('truncate', ['-s', '46M', path]);
    // Primary 1 (no filesystem), extended 2 from 2 MiB; logical 5 at 3 MiB (8 MiB), logical 6 at 12 MiB (32 MiB).
    await sfdisk(
      path,
      [
        'label: dos',
        'start=2048, size=2048, type=83',
        'start=4096, size=86016, type=5',
        'start=6144, size=16384, type=e',
        'start=24576, size=65536, type=83',
        '',
      ].join('\n'),
    );
    const listed = (await run('sfdisk', ['-d', path])).stdout;
    assert.match(listed, /img5 : start= +6144, size= +16384, type=e/, listed);
    const boot = { path, offset: 6144 * 512, sizeMiB: 8 };
    await run('mkfs.vfat', ['-F', '16', '-s', '1', '-n', 'resin-boot', '--offset', '6144', path, '8192']);
    await mkext4(path, 24576 * 512, 32);
    const partition = await configure(path);
    assert.deepEqual([partition.index, partition.scheme, partition.offset], [5, 'mbr', boot.offset]);
    await readBack(boot);
    await dataPartitionWorks(path, 24576 * 512);
  });
});

describe('one writer at a time', { concurrency: true }, () => {
  const configure = (image: string, holdMs: number) =>
    flotilla(configDir, ['os', 'configure', image, '--config', configFile, '--wifi-ssid', 'locked'], {
      env: { FLOTILLA_TEST_IMAGE_LOCK_HOLD_MS: String(holdMs) },
    });
  const leftovers = async (image: string) =>
    (await readdir(dir.path)).filter((name) => name.startsWith(`${image.split('/').pop()}.flotilla-lock`));

  test('two runs started together on one image: one writes, the other refuses at once with DISK_IMAGE_BUSY', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const started = Date.now();
    // Each holds the lock 2 s once it has it: whichever comes second finds it held, however the two are scheduled.
    const runs = await Promise.all(
      [0, 1].map(async () => {
        const r = await configure(image.path, 2000);
        return { ...r, ms: Date.now() - started };
      }),
    );
    const ok = runs.filter((r) => r.code === 0);
    const refused = runs.filter((r) => r.code !== 0);
    assert.equal(ok.length, 1, runs.map((r) => r.stderr).join('\n'));
    assert.equal(refused.length, 1);
    assert.match(refused[0]?.stderr ?? '', /is being written by process \d+ .*\(DISK_IMAGE_BUSY\)/);
    assert.ok((refused[0]?.ms ?? 0) < (ok[0]?.ms ?? 0), 'the second run refused without waiting for the first');
    assert.match(await mtype(image, 'system-connections/flotilla-wifi'), /\nssid=locked\n/);
    await fsckClean(image);
    assert.deepEqual(await leftovers(image.path), [], 'the lock file is removed when the run ends');
  });

  test('a lock left by a run killed with -9 does not block the next run', async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const lock = `${image.path}.flotilla-lock`;
    const child = spawn(process.execPath, [CLI_MAIN, 'os', 'configure', image.path, '--config', configFile], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: configDir, FLOTILLA_TEST_IMAGE_LOCK_HOLD_MS: '60000' },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 20_000;
    while (
      !(await stat(lock).then(
        () => true,
        () => false,
      ))
    ) {
      assert.ok(Date.now() < deadline, 'the first run took the lock');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(JSON.parse(await readFile(lock, 'utf8')).pid, child.pid);
    // Held and alive: refused.
    const blocked = await configure(image.path, 0);
    assert.match(blocked.stderr, /\(DISK_IMAGE_BUSY\)/);
    child.kill('SIGKILL');
    assert.equal(await exited, null);
    assert.ok(await stat(lock), 'kill -9 leaves the lock file behind');
    const next = await configure(image.path, 0);
    assert.equal(next.code, 0, next.stderr);
    assert.match(await mtype(image, 'system-connections/flotilla-wifi'), /\nssid=locked\n/);
    await fsckClean(image);
    assert.deepEqual(await leftovers(image.path), []);
  });

  test('an in-place image keeps its file mode (0644 and 0600)', async () => {
    for (const mode of [0o644, 0o600]) {
      const image = await makeImage({ label: 'resin-boot' });
      await chmod(image.path, mode);
      const r = await configure(image.path, 0);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((await stat(image.path)).mode & 0o777, mode);
      await fsckClean(image);
    }
  });
});

describe('os configure --fleet', () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ dataDir: join(dir.path, 'server'), host: '127.0.0.1', port: 0 });
    const key = server.admin?.apiKey as string;
    assert.equal((await flotilla(configDir, ['login', '--url', server.url, '--api-key', key])).code, 0);
    await flotillaJson(configDir, ['fleet', 'create', 'Image Maker', '--slug', `image-maker-${process.pid}`]);
  });
  after(async () => {
    await server?.close();
  });

  test("writes the fleet's config.json from the server, as `os config` makes it", async () => {
    const image = await makeImage({ label: 'resin-boot' });
    const r = await flotilla(configDir, [
      'os',
      'configure',
      image.path,
      '--fleet',
      `image-maker-${process.pid}`,
      '--hostname',
      'probe-2',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(await mtype(image, 'config.json'));
    assert.equal(written.hostname, 'probe-2');
    assert.equal(typeof (written.provisioningApiKey ?? written.apiKey), 'string');
    assert.equal(written.apiEndpoint, server.url);
    await fsckClean(image);
  });
});
