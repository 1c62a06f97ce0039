import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { readPartitionTable } from './partitions.js';

const MiB = 1024 * 1024;

/** An MBR with the given primary entries (type, start sector, sector count). */
function mbr(
  entries: [number, number, number][],
  size = 64 * MiB,
): { read: (p: number, l: number) => Buffer; size: number } {
  const disk = Buffer.alloc(4096);
  entries.forEach(([type, start, count], i) => {
    const at = 446 + i * 16;
    disk[at + 4] = type;
    disk.writeUInt32LE(start, at + 8);
    disk.writeUInt32LE(count, at + 12);
  });
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return { read: (p, l) => Buffer.from(disk.subarray(p, p + l)), size };
}

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(
    fn,
    (e: unknown) => e instanceof FlotillaError && e.code === 'DISK_IMAGE_INVALID' && message.test(e.message),
  );

test('MBR primary partitions are read in bytes; extended ones are skipped', () => {
  const disk = mbr([
    [0x0c, 2048, 81920],
    [0x05, 90000, 1000],
    [0x83, 100000, 2048],
  ]);
  const table = readPartitionTable(disk.read, disk.size);
  assert.equal(table.scheme, 'mbr');
  assert.deepEqual(
    table.partitions.map((p) => [p.index, p.offset, p.size, p.type]),
    [
      [1, MiB, 40 * MiB, '0c'],
      [3, 100000 * 512, 2048 * 512, '83'],
    ],
  );
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
