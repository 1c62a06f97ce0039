import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { logicalPartitions, readPartitionTable } from './partitions.js';
import type { ReadAt } from './partitions.js';

const MiB = 1024 * 1024;

/** A disk of `size` bytes whose MBR has the given primary entries (type, start sector, sector count). */
function mbr(entries: [number, number, number][], size = 64 * MiB): { disk: Buffer; read: ReadAt; size: number } {
  const disk = Buffer.alloc(size);
  writeEntries(disk, 0, entries);
  return { disk, read: (p, l) => Buffer.from(disk.subarray(p, p + l)), size };
}

function writeEntries(disk: Buffer, at: number, entries: [number, number, number][]): void {
  entries.forEach(([type, start, count], i) => {
    const entry = at + 446 + i * 16;
    disk[entry + 4] = type;
    disk.writeUInt32LE(start, entry + 8);
    disk.writeUInt32LE(count, entry + 12);
  });
  disk[at + 510] = 0x55;
  disk[at + 511] = 0xaa;
}

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof FlotillaError && e.code === 'DISK_IMAGE_INVALID' && message.test(e.message),
  );

test('MBR primary partitions are read in bytes; an empty extended one adds nothing', () => {
  const disk = mbr([
    [0x0c, 2048, 81920],
    [0x05, 90000, 1000],
    [0x83, 100000, 2048],
  ]);
  writeEntries(disk.disk, 90000 * 512, []);
  const table = readPartitionTable(disk.read, disk.size);
  assert.equal(table.scheme, 'mbr');
  assert.equal(table.sectorSize, 512);
  assert.deepEqual(
    table.partitions.map((p) => [p.index, p.offset, p.size, p.type]),
    [
      [1, MiB, 40 * MiB, '0c'],
      [3, 100000 * 512, 2048 * 512, '83'],
    ],
  );
});

test('logical partitions: the EBR chain is followed, numbered from 5, offsets relative to each EBR', () => {
  const disk = mbr([
    [0x83, 2048, 2048],
    [0x0f, 8192, 40960],
  ]);
  writeEntries(disk.disk, 8192 * 512, [
    [0x0c, 2048, 4096],
    [0x05, 8192, 20000],
  ]);
  writeEntries(disk.disk, (8192 + 8192) * 512, [[0x83, 2048, 8192]]);
  const table = readPartitionTable(disk.read, disk.size);
  assert.deepEqual(
    table.partitions.map((p) => [p.index, p.offset / 512, p.size / 512, p.type]),
    [
      [1, 2048, 2048, '83'],
      [5, 8192 + 2048, 4096, '0c'],
      [6, 16384 + 2048, 8192, '83'],
    ],
  );
});

test('an EBR chain that loops, or points outside the extended partition or the file, is refused', () => {
  // EBR 2 links back to EBR 1.
  const looping = mbr([[0x05, 2048, 40960]]);
  writeEntries(looping.disk, 2048 * 512, [
    [0x83, 2048, 2048],
    [0x05, 8192, 8192],
  ]);
  writeEntries(looping.disk, (2048 + 8192) * 512, [
    [0x83, 2048, 2048],
    [0x05, 0, 8192],
  ]);
  refused(() => readPartitionTable(looping.read, looping.size), /loops back to sector 2048/);
  // An EBR linking to itself.
  const self = mbr([[0x05, 2048, 40960]]);
  writeEntries(self.disk, 2048 * 512, [
    [0x83, 2048, 2048],
    [0x05, 0, 8192],
  ]);
  refused(() => readPartitionTable(self.read, self.size), /loops back/);
  const outside = mbr([[0x05, 2048, 40960]]);
  writeEntries(outside.disk, 2048 * 512, [
    [0x83, 2048, 2048],
    [0x05, 4_000_000, 8192],
  ]);
  refused(() => readPartitionTable(outside.read, outside.size), /outside the extended partition or the file/);
  const logicalOut = mbr([[0x05, 2048, 4096]]);
  writeEntries(logicalOut.disk, 2048 * 512, [[0x83, 2048, 8192]]);
  refused(() => readPartitionTable(logicalOut.read, logicalOut.size), /logical partition 5 lies outside/);
  const unsigned = mbr([[0x05, 2048, 4096]]);
  refused(() => readPartitionTable(unsigned.read, unsigned.size), /no boot signature/);
  // A chain that never repeats still ends: bounded by a count.
  const long = Buffer.alloc(200 * 512 * 2);
  const longRead: ReadAt = (p, l) => {
    const b = Buffer.alloc(l);
    long.copy(b, 0, p, p + l);
    return b;
  };
  for (let i = 0; i < 199; i++)
    writeEntries(long, (1 + i) * 512, [
      [0, 0, 0],
      [0x05, i + 1, 1],
    ]);
  refused(() => logicalPartitions(longRead, 1, 10_000, 512, 1_000_000_000), /more than 128 logical partitions/);
});

test('an MBR of a 4Kn disk: read with 4096-byte sectors when a filesystem starts there', () => {
  const disk = mbr([[0x0c, 256, 4096]]);
  // A FAT boot sector at 256 * 4096 (nothing at 256 * 512).
  const boot = 256 * 4096;
  disk.disk[boot] = 0xeb;
  disk.disk[boot + 510] = 0x55;
  disk.disk[boot + 511] = 0xaa;
  const table = readPartitionTable(disk.read, disk.size);
  assert.equal(table.sectorSize, 4096);
  assert.deepEqual(
    table.partitions.map((p) => [p.offset, p.size]),
    [[MiB, 16 * MiB]],
  );
  // The same table with the filesystem at 256 * 512 is a 512-byte one.
  const small = mbr([[0x0c, 256, 4096]]);
  small.disk[256 * 512] = 0xeb;
  small.disk[256 * 512 + 510] = 0x55;
  small.disk[256 * 512 + 511] = 0xaa;
  assert.equal(readPartitionTable(small.read, small.size).sectorSize, 512);
});

test('every field is checked: size, signature, status, bounds, overlap', () => {
  refused(() => readPartitionTable(() => Buffer.alloc(512), 100), /too small/);
  refused(() => readPartitionTable(() => Buffer.alloc(512), 4096), /no MBR boot signature/);
  const outside = mbr([[0x0c, 2048, 200000]]);
  refused(() => readPartitionTable(outside.read, outside.size), /past the end/);
  const overlap = mbr([
    [0x0c, 2048, 8192],
    [0x83, 4096, 8192],
  ]);
  refused(() => readPartitionTable(overlap.read, overlap.size), /overlap/);
  const empty = mbr([]);
  refused(() => readPartitionTable(empty.read, empty.size), /holds no partition/);
  const badStatus = mbr([[0x0c, 2048, 8192]]);
  const raw = badStatus.read(0, 4096);
  raw[446] = 0x12;
  refused(() => readPartitionTable((p, l) => raw.subarray(p, p + l), badStatus.size), /status byte/);
  const protective = mbr([[0xee, 1, 100]]);
  refused(() => readPartitionTable(protective.read, protective.size), /no GPT header/);
});
