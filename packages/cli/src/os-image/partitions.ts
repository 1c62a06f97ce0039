import { crc32 } from 'node:zlib';
import { FlotillaError } from '@flotilla/protocol';

/** One partition of a disk image, in bytes from the start of the file. */
export interface Partition {
  /** 1-based, as `fdisk` numbers them. */
  index: number;
  offset: number;
  size: number;
  /** MBR type byte as hex (`0c`), or the GPT type GUID. */
  type: string;
  /** GPT partition name; MBR has none. */
  name?: string;
}

export interface PartitionTable {
  scheme: 'mbr' | 'gpt';
  sectorSize: number;
  partitions: Partition[];
}

/** Reads `length` bytes at `position` of the image (fewer only past its end). */
export type ReadAt = (position: number, length: number) => Buffer;

const SECTOR = 512;
/** Logical sector size of 4Kn ("4K native") disks. */
const LARGE_SECTOR = 4096;
/** Far more than any real disk has: a bound on the EBR walk besides loop detection. */
const MAX_LOGICAL = 128;
const GPT_PROTECTIVE = 0xee;
const EXTENDED = new Set([0x05, 0x0f, 0x85]);

function invalid(message: string): FlotillaError {
  return new FlotillaError('DISK_IMAGE_INVALID', message);
}

/** A FAT boot sector at offset 0 also ends in 55 AA; it is a bare filesystem, not a partitioned disk. */
function looksLikeFatBootSector(sector: Buffer): boolean {
  const jump = sector[0] === 0xeb || sector[0] === 0xe9;
  const label = sector.subarray(54, 62).toString('latin1');
  const label32 = sector.subarray(82, 90).toString('latin1');
  return jump && (label.startsWith('FAT') || label32.startsWith('FAT32'));
}

/**
 * The partition table of a raw disk image of `fileSize` bytes: MBR primary partitions and the logical ones of its
 * extended partition, or GPT behind a protective MBR; with 512- or 4096-byte logical sectors (4Kn disks). GPT says
 * which (its header is at LBA 1 of either size); MBR does not, so the MBR is read with 512 first and with 4096 when no
 * partition then starts with a filesystem (FAT, ext) that 4096 finds.
 * INVARIANT: every partition returned lies wholly inside the file, so later reads at its offsets cannot run off the
 * end; anything else is DISK_IMAGE_INVALID naming what is wrong.
 */
export function readPartitionTable(read: ReadAt, fileSize: number): PartitionTable {
  if (fileSize < 2 * SECTOR)
    throw invalid(`not a disk image: ${fileSize} bytes is too small to hold a partition table`);
  const mbr = read(0, SECTOR);
  if (mbr[510] !== 0x55 || mbr[511] !== 0xaa) throw invalid('not a disk image: no MBR boot signature (55 AA)');
  if (looksLikeFatBootSector(mbr))
    throw invalid('not a partitioned disk image: the file is a bare FAT filesystem (give the whole disk image)');
  const entries = [0, 1, 2, 3].map((i) => mbr.subarray(446 + i * 16, 446 + (i + 1) * 16));
  if (entries.some((entry) => entry[0] !== 0x00 && entry[0] !== 0x80))
    throw invalid('not a disk image: an MBR partition entry has an invalid status byte');
  if (entries.some((entry) => entry[4] === GPT_PROTECTIVE)) return readGpt(read, fileSize);
  let small: PartitionTable | undefined;
  let smallError: unknown;
  try {
    small = readMbr(read, entries, SECTOR, fileSize);
    if (small.partitions.some((p) => startsWithFilesystem(read, p))) return small;
  } catch (error) {
    smallError = error;
  }
  if (fileSize >= 2 * LARGE_SECTOR) {
    try {
      const large = readMbr(read, entries, LARGE_SECTOR, fileSize);
      if (large.partitions.some((p) => startsWithFilesystem(read, p))) return large;
    } catch {
      // Not a 4Kn disk either: what the 512-byte reading found (or refused) stands.
    }
  }
  if (small) return small;
  throw smallError;
}

function readMbr(read: ReadAt, entries: Buffer[], sector: number, fileSize: number): PartitionTable {
  const partitions: Partition[] = [];
  entries.forEach((entry, i) => {
    const type = entry[4] ?? 0;
    const start = entry.readUInt32LE(8);
    const count = entry.readUInt32LE(12);
    if (type === 0 || count === 0) return;
    if (EXTENDED.has(type)) {
      partitions.push(...logicalPartitions(read, start, count, sector, fileSize));
      return;
    }
    partitions.push(
      checked({ index: i + 1, offset: start * sector, size: count * sector, type: hex(type) }, fileSize, sector),
    );
  });
  if (partitions.length === 0) throw invalid('not a disk image: the MBR holds no partition');
  return { scheme: 'mbr', sectorSize: sector, partitions: overlapsChecked(partitions) };
}

/**
 * The logical partitions of the extended partition at sector `first` (`count` sectors): a chain of extended boot
 * records, each holding one logical partition (its start relative to that EBR) and the next EBR (its start relative to
 * the extended partition). Numbered from 5, as Linux does. A chain that loops, or points outside the extended
 * partition or the file, is DISK_IMAGE_INVALID: followed blindly it would never end, or read past the file.
 */
export function logicalPartitions(
  read: ReadAt,
  first: number,
  count: number,
  sector: number,
  fileSize: number,
): Partition[] {
  const found: Partition[] = [];
  const visited = new Set<number>();
  let next = 0;
  for (;;) {
    const lba = first + next;
    if (visited.has(lba)) throw invalid(`the chain of extended boot records loops back to sector ${lba}`);
    if (visited.size >= MAX_LOGICAL) throw invalid(`more than ${MAX_LOGICAL} logical partitions`);
    visited.add(lba);
    if (next >= count || (lba + 1) * sector > fileSize)
      throw invalid(`an extended boot record at sector ${lba} lies outside the extended partition or the file`);
    const ebr = read(lba * sector, SECTOR);
    if (ebr[510] !== 0x55 || ebr[511] !== 0xaa)
      throw invalid(`the extended boot record at sector ${lba} has no boot signature (55 AA)`);
    const logical = ebr.subarray(446, 462);
    const link = ebr.subarray(462, 478);
    const type = logical[4] ?? 0;
    const start = logical.readUInt32LE(8);
    const size = logical.readUInt32LE(12);
    if (type !== 0 && size !== 0) {
      const index = 5 + found.length;
      if (start === 0 || lba + start + size > first + count)
        throw invalid(`logical partition ${index} lies outside its extended partition`);
      found.push(
        checked({ index, offset: (lba + start) * sector, size: size * sector, type: hex(type) }, fileSize, sector),
      );
    }
    if (!EXTENDED.has(link[4] ?? 0) || link.readUInt32LE(12) === 0) return found;
    next = link.readUInt32LE(8);
  }
}

/** Whether a FAT boot sector or an ext2/3/4 superblock is at the start of `partition`. */
function startsWithFilesystem(read: ReadAt, partition: Partition): boolean {
  const head = read(partition.offset, Math.min(2048, partition.size));
  const fat = head[510] === 0x55 && head[511] === 0xaa && (head[0] === 0xeb || head[0] === 0xe9);
  return fat || (head.length >= 1024 + 0x3a && head.readUInt16LE(1024 + 0x38) === 0xef53);
}

function readGpt(read: ReadAt, fileSize: number): PartitionTable {
  const sector = [SECTOR, LARGE_SECTOR].find(
    (size) => fileSize >= 2 * size && read(size, 8).toString('latin1') === 'EFI PART',
  );
  if (!sector) throw invalid('protective MBR but no GPT header at sector 1 (of 512 or 4096 bytes)');
  const header = read(sector, sector);
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > sector) throw invalid(`GPT header size ${headerSize} is invalid`);
  const withoutCrc = Buffer.from(header.subarray(0, headerSize));
  withoutCrc.writeUInt32LE(0, 16);
  if (crc32(withoutCrc) !== header.readUInt32LE(16)) throw invalid('the GPT header checksum (CRC32) does not match');
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = header.readUInt32LE(80);
  const entrySize = header.readUInt32LE(84);
  if (entrySize < 128 || entrySize % 8 !== 0 || entrySize > 4096)
    throw invalid(`GPT entry size ${entrySize} is invalid`);
  if (count === 0 || count > 1024) throw invalid(`GPT entry count ${count} is invalid`);
  const tableBytes = count * entrySize;
  if (entriesLba < 2 || entriesLba * sector + tableBytes > fileSize)
    throw invalid('the GPT partition entries lie outside the file (truncated image?)');
  const table = read(entriesLba * sector, tableBytes);
  if (crc32(table) !== header.readUInt32LE(88))
    throw invalid('the GPT partition entries checksum (CRC32) does not match');
  const partitions: Partition[] = [];
  for (let i = 0; i < count; i++) {
    const entry = table.subarray(i * entrySize, (i + 1) * entrySize);
    if (entry.subarray(0, 16).every((b) => b === 0)) continue;
    const first = Number(entry.readBigUInt64LE(32));
    const last = Number(entry.readBigUInt64LE(40));
    if (last < first) throw invalid(`GPT partition ${i + 1} ends before it starts`);
    const name = entry.subarray(56, 128).toString('utf16le').replace(/\0.*$/s, '');
    partitions.push(
      checked(
        { index: i + 1, offset: first * sector, size: (last - first + 1) * sector, type: guid(entry), name },
        fileSize,
        sector,
      ),
    );
  }
  if (partitions.length === 0) throw invalid('not a disk image: the GPT holds no partition');
  return { scheme: 'gpt', sectorSize: sector, partitions: overlapsChecked(partitions) };
}

function checked(partition: Partition, fileSize: number, sector: number): Partition {
  if (partition.offset < sector || !Number.isSafeInteger(partition.offset + partition.size))
    throw invalid(`partition ${partition.index} starts at an invalid offset`);
  if (partition.offset + partition.size > fileSize)
    throw invalid(
      `partition ${partition.index} ends at byte ${partition.offset + partition.size}, past the end of the ${fileSize}-byte file (truncated image?)`,
    );
  return partition;
}

function overlapsChecked(partitions: Partition[]): Partition[] {
  const sorted = [...partitions].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1] as Partition;
    const after = sorted[i] as Partition;
    if (before.offset + before.size > after.offset)
      throw invalid(`partitions ${before.index} and ${after.index} overlap`);
  }
  return partitions;
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

/** GPT GUIDs store their first three groups little-endian. */
function guid(entry: Buffer): string {
  const b = entry.subarray(0, 16);
  const le = (from: number, to: number) => Buffer.from(b.subarray(from, to)).reverse().toString('hex');
  return `${le(0, 4)}-${le(4, 6)}-${le(6, 8)}-${b.subarray(8, 10).toString('hex')}-${b.subarray(10, 16).toString('hex')}`;
}
