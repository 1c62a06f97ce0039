import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { findDataPartition, readExt4 } from './data-partition.js';
import type { Partition, PartitionTable } from './partitions.js';

const PART = 64 * 1024;

/** A disk of `parts.length` partitions of 64 KiB, each with an ext4 superblock (or none: `null`). */
function disk(parts: ({ label: string; name?: string; free?: number; reserved?: number } | null)[]) {
  const bytes = Buffer.alloc(PART * (parts.length + 1));
  const partitions: Partition[] = parts.map((spec, i) => {
    const offset = PART * (i + 1);
    if (spec) {
      const sb = bytes.subarray(offset + 1024, offset + 2048);
      sb.writeUInt32LE(spec.reserved ?? 0, 0x08);
      sb.writeUInt32LE(spec.free ?? 10, 0x0c);
      sb.writeUInt32LE(2, 0x18); // 4 KiB blocks
      sb.writeUInt16LE(0xef53, 0x38);
      sb.write(spec.label, 0x78, 'latin1');
    }
    return { index: i + 1, offset, size: PART, type: 'x', ...(spec?.name ? { name: spec.name } : {}) };
  });
  const table: PartitionTable = { scheme: 'gpt', sectorSize: 512, partitions };
  const read = (position: number, length: number) => bytes.subarray(position, position + length);
  return { table, read };
}

describe('data partition', () => {
  it('is the ext4 one labelled resin-data, before flotilla-data and data', () => {
    const { table, read } = disk([{ label: 'data' }, { label: 'resin-rootA' }, { label: 'resin-data' }]);
    assert.equal(findDataPartition(read, table).partition.index, 3);
  });

  it('is found by GPT name when the filesystem has no label', () => {
    const { table, read } = disk([{ label: 'root' }, { label: '', name: 'flotilla-data' }]);
    assert.equal(findDataPartition(read, table).partition.index, 2);
  });

  it('counts free bytes without the root-reserved blocks', () => {
    const { table, read } = disk([{ label: 'resin-data', free: 100, reserved: 30 }]);
    const ext4 = readExt4(read, table.partitions[0] as Partition);
    assert.deepEqual(ext4, { label: 'resin-data', blockSize: 4096, freeBytes: 70 * 4096, needsRecovery: false });
  });

  it('is refused when no ext4 partition has a data label, or the labelled one is not ext4', () => {
    for (const parts of [[{ label: 'resin-rootA' }], [null, { label: 'other', name: 'boot' }]]) {
      const { table, read } = disk(parts);
      assert.throws(
        () => findDataPartition(read, table),
        (error) => error instanceof FlotillaError && error.code === 'DATA_PARTITION_NOT_FOUND',
      );
    }
  });
});
