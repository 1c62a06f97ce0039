import { DATA_PARTITION_LABELS, FlotillaError } from '@flotilla/protocol';
import type { Partition, PartitionTable, ReadAt } from './partitions.js';

/** What the ext4 superblock says about the data partition's filesystem. */
export interface Ext4Facts {
  label: string;
  blockSize: number;
  /** Free blocks the filesystem would give anyone, the root-reserved ones left out (the device needs them). */
  freeBytes: number;
  /** The journal holds writes not yet replayed (a filesystem taken while mounted): debugfs would write past them. */
  needsRecovery: boolean;
}

export interface DataPartition {
  partition: Partition;
  ext4: Ext4Facts;
}

const SUPERBLOCK_OFFSET = 1024;
const EXT_MAGIC = 0xef53;
const INCOMPAT_64BIT = 0x80;
const INCOMPAT_RECOVER = 0x4;

/** The ext2/3/4 superblock of the filesystem at the start of `partition`, or undefined when it holds none. */
export function readExt4(read: ReadAt, partition: Partition): Ext4Facts | undefined {
  if (partition.size < SUPERBLOCK_OFFSET + 1024) return undefined;
  const sb = read(partition.offset + SUPERBLOCK_OFFSET, 1024);
  if (sb.readUInt16LE(0x38) !== EXT_MAGIC) return undefined;
  const logBlockSize = sb.readUInt32LE(0x18);
  if (logBlockSize > 6) return undefined; // 64 KiB is the largest block size; anything else is not a superblock
  const blockSize = 1024 * 2 ** logBlockSize;
  const incompat = sb.readUInt32LE(0x60);
  const wide = (incompat & INCOMPAT_64BIT) !== 0;
  const count = (lo: number, hi: number) => sb.readUInt32LE(lo) + (wide ? sb.readUInt32LE(hi) * 2 ** 32 : 0);
  const free = count(0x0c, 0x158);
  const reserved = count(0x08, 0x154);
  const label = sb.subarray(0x78, 0x88).toString('latin1').replace(/\0.*$/s, '');
  return {
    label,
    blockSize,
    freeBytes: Math.max(0, free - reserved) * blockSize,
    needsRecovery: (incompat & INCOMPAT_RECOVER) !== 0,
  };
}

/**
 * The data partition: the ext4 one whose filesystem label (else GPT name) is one of DATA_PARTITION_LABELS, the
 * earlier label winning. No guess past that: writing a release into the wrong ext4 partition (a root filesystem)
 * would go unnoticed until a device fails to run it.
 */
export function findDataPartition(read: ReadAt, table: PartitionTable): DataPartition {
  const candidates: (DataPartition & { rank: number })[] = [];
  for (const partition of table.partitions) {
    const ext4 = readExt4(read, partition);
    if (!ext4) continue;
    const rank = [ext4.label, partition.name ?? '']
      .map((name) => DATA_PARTITION_LABELS.indexOf(name.toLowerCase() as (typeof DATA_PARTITION_LABELS)[number]))
      .filter((i) => i >= 0)
      .sort()[0];
    if (rank !== undefined) candidates.push({ partition, ext4, rank });
  }
  candidates.sort((a, b) => a.rank - b.rank);
  const found = candidates[0];
  if (!found)
    throw new FlotillaError(
      'DATA_PARTITION_NOT_FOUND',
      `no ext4 partition labelled ${DATA_PARTITION_LABELS.join(', ')} among the ${table.partitions.length} partition(s) of this ${table.scheme.toUpperCase()} image`,
    );
  return { partition: found.partition, ext4: found.ext4 };
}
