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
 * The partition table of a raw disk image of `fileSize` bytes. MBR primary partitions, or GPT behind a protective
 * MBR. INVARIANT: every partition returned lies wholly inside the file, so later reads at its offsets cannot run off
 * the end; anything else is DISK_IMAGE_INVALID naming what is wrong.
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
  const partitions: Partition[] = [];
  entries.forEach((entry, i) => {
    const type = entry[4] ?? 0;
    const start = entry.readUInt32LE(8);
    const count = entry.readUInt32LE(12);
    if (type === 0 || count === 0) return;
    // Logical partitions inside an extended one are not looked into: boot partitions are primary.
    if (EXTENDED.has(type)) return;
    partitions.push(checked({ index: i + 1, offset: start * SECTOR, size: count * SECTOR, type: hex(type) }, fileSize));
  });
  if (partitions.length === 0) throw invalid('not a disk image: the MBR holds no partition');
  return { scheme: 'mbr', sectorSize: SECTOR, partitions: overlapsChecked(partitions) };
}

function readGpt(read: ReadAt, fileSize: number): PartitionTable {
  const header = read(SECTOR, SECTOR);
  if (header.subarray(0, 8).toString('latin1') !== 'EFI PART')
    throw invalid('protective MBR but no GPT header at sector 1 (images with 4096-byte sectors are not supported)');
  const headerSize = header.readUInt32LE(12);
  if (headerSize < 92 || headerSize > SECTOR) throw invalid(`GPT header size ${headerSize} is invalid`);
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
  if (entriesLba < 2 || entriesLba * SECTOR + tableBytes > fileSize)
    throw invalid('the GPT partition entries lie outside the file (truncated image?)');
  const table = read(entriesLba * SECTOR, tableBytes);
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
        { index: i + 1, offset: first * SECTOR, size: (last - first + 1) * SECTOR, type: guid(entry), name },
        fileSize,
      ),
    );
  }
  if (partitions.length === 0) throw invalid('not a disk image: the GPT holds no partition');
  return { scheme: 'gpt', sectorSize: SECTOR, partitions: overlapsChecked(partitions) };
}

function checked(partition: Partition, fileSize: number): Partition {
  if (partition.offset < SECTOR || !Number.isSafeInteger(partition.offset + partition.size))
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
