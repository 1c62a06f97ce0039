import { FlotillaError } from '@flotilla/protocol';

/** Byte access to one partition; positions are relative to its start. */
export interface Region {
  readonly size: number;
  read(position: number, length: number): Buffer;
  write(position: number, data: Buffer): void;
}

export type FatType = 12 | 16 | 32;

export interface FatLayout {
  type: FatType;
  bytesPerSector: number;
  clusterSize: number;
  fatOffset: number;
  fatBytes: number;
  fatCount: number;
  /** FAT12/16 fixed root directory region; absent on FAT32. */
  rootDir?: { offset: number; entries: number };
  /** FAT32 root directory's first cluster. */
  rootCluster: number;
  dataOffset: number;
  /** Clusters are numbered 2 .. clusterCount + 1. */
  clusterCount: number;
  fsInfoOffset?: number;
  /** The volume label from the boot sector (the root directory may hold a newer one). */
  bootLabel: string;
}

export function corrupt(message: string): FlotillaError {
  return new FlotillaError('DISK_IMAGE_INVALID', `the boot partition's FAT filesystem is inconsistent: ${message}`);
}

/** The FAT layout from a partition's boot sector, or undefined when it holds no FAT filesystem. Every field is checked. */
export function readFatLayout(region: Region): FatLayout | undefined {
  if (region.size < 1024) return undefined;
  const b = region.read(0, 512);
  if (b[510] !== 0x55 || b[511] !== 0xaa || (b[0] !== 0xeb && b[0] !== 0xe9)) return undefined;
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13] ?? 0;
  const reserved = b.readUInt16LE(14);
  const fatCount = b[16] ?? 0;
  const rootEntries = b.readUInt16LE(17);
  const totalSectors = b.readUInt16LE(19) || b.readUInt32LE(32);
  const fatSectors = b.readUInt16LE(22) || b.readUInt32LE(36);
  const powerOfTwo = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (![512, 1024, 2048, 4096].includes(bytesPerSector) || !powerOfTwo(sectorsPerCluster)) return undefined;
  if (reserved < 1 || fatCount < 1 || fatCount > 4 || fatSectors < 1 || totalSectors < 1) return undefined;
  const rootDirSectors = Math.ceil((rootEntries * 32) / bytesPerSector);
  const dataSector = reserved + fatCount * fatSectors + rootDirSectors;
  if (dataSector >= totalSectors || totalSectors * bytesPerSector > region.size) return undefined;
  const clusterCount = Math.floor((totalSectors - dataSector) / sectorsPerCluster);
  const type: FatType = clusterCount < 4085 ? 12 : clusterCount < 65525 ? 16 : 32;
  const fatBytes = fatSectors * bytesPerSector;
  // The FAT must have an entry for every cluster.
  if (Math.floor((fatBytes * 8) / type) < clusterCount + 2) return undefined;
  if ((type === 32) !== (rootEntries === 0)) return undefined;
  const layout: FatLayout = {
    type,
    bytesPerSector,
    clusterSize: sectorsPerCluster * bytesPerSector,
    fatOffset: reserved * bytesPerSector,
    fatBytes,
    fatCount,
    rootCluster: type === 32 ? b.readUInt32LE(44) : 0,
    dataOffset: dataSector * bytesPerSector,
    clusterCount,
    bootLabel: b
      .subarray(type === 32 ? 71 : 43, type === 32 ? 82 : 54)
      .toString('latin1')
      .trim(),
  };
  if (type !== 32)
    layout.rootDir = { offset: (reserved + fatCount * fatSectors) * bytesPerSector, entries: rootEntries };
  if (type === 32) {
    if (layout.rootCluster < 2 || layout.rootCluster > clusterCount + 1) return undefined;
    const fsInfo = b.readUInt16LE(48);
    if (fsInfo > 0 && fsInfo < reserved) layout.fsInfoOffset = fsInfo * bytesPerSector;
  }
  return layout;
}

/**
 * A FAT filesystem's allocation table, held in memory (a boot partition's FAT is a few hundred KiB at most) and
 * written back to every copy. Cluster chains are followed with loop and range checks.
 */
export class FatTable {
  private readonly table: Buffer;

  constructor(
    private readonly region: Region,
    readonly layout: FatLayout,
  ) {
    this.table = region.read(layout.fatOffset, layout.fatBytes);
  }

  get endOfChain(): number {
    return this.layout.type === 12 ? 0xfff : this.layout.type === 16 ? 0xffff : 0x0fffffff;
  }

  get(cluster: number): number {
    const t = this.table;
    if (this.layout.type === 16) return t.readUInt16LE(cluster * 2);
    if (this.layout.type === 32) return t.readUInt32LE(cluster * 4) & 0x0fffffff;
    const at = Math.floor((cluster * 3) / 2);
    const pair = t.readUInt16LE(at);
    return cluster % 2 === 0 ? pair & 0xfff : pair >> 4;
  }

  set(cluster: number, value: number): void {
    const t = this.table;
    if (this.layout.type === 16) t.writeUInt16LE(value, cluster * 2);
    else if (this.layout.type === 32)
      // The top four bits are reserved and kept as they are.
      t.writeUInt32LE(((t.readUInt32LE(cluster * 4) & 0xf0000000) | (value & 0x0fffffff)) >>> 0, cluster * 4);
    else {
      const at = Math.floor((cluster * 3) / 2);
      const pair = t.readUInt16LE(at);
      t.writeUInt16LE(cluster % 2 === 0 ? (pair & 0xf000) | value : (pair & 0x000f) | (value << 4), at);
    }
  }

  isEnd(value: number): boolean {
    return value >= (this.layout.type === 12 ? 0xff8 : this.layout.type === 16 ? 0xfff8 : 0x0ffffff8);
  }

  private inRange(cluster: number): boolean {
    return cluster >= 2 && cluster <= this.layout.clusterCount + 1;
  }

  /** The clusters of the chain starting at `first` (none for 0, an empty file). */
  chain(first: number): number[] {
    const clusters: number[] = [];
    let cluster = first;
    while (cluster !== 0) {
      if (!this.inRange(cluster)) throw corrupt(`cluster ${cluster} is out of range`);
      if (clusters.length > this.layout.clusterCount) throw corrupt(`the chain from cluster ${first} loops`);
      clusters.push(cluster);
      const next = this.get(cluster);
      if (this.isEnd(next)) break;
      if (next === 0) throw corrupt(`the chain from cluster ${first} runs into a free cluster`);
      cluster = next;
    }
    return clusters;
  }

  /** Free clusters, lowest first, never any in `exclude`; fewer than `count` when the volume is that full. */
  free(count: number, exclude: ReadonlySet<number> = new Set()): number[] {
    const found: number[] = [];
    for (let c = 2; c <= this.layout.clusterCount + 1 && found.length < count; c++)
      if (this.get(c) === 0 && !exclude.has(c)) found.push(c);
    return found;
  }

  freeCount(): number {
    let n = 0;
    for (let c = 2; c <= this.layout.clusterCount + 1; c++) if (this.get(c) === 0) n++;
    return n;
  }

  /** Links `clusters` into one chain ending in end-of-chain. */
  link(clusters: readonly number[]): void {
    clusters.forEach((cluster, i) => {
      this.set(cluster, clusters[i + 1] ?? this.endOfChain);
    });
  }

  /** Writes the table to every FAT copy, then refreshes the FAT32 free-cluster hint so `fsck` finds it right. */
  flush(): void {
    for (let i = 0; i < this.layout.fatCount; i++)
      this.region.write(this.layout.fatOffset + i * this.layout.fatBytes, this.table);
    const at = this.layout.fsInfoOffset;
    if (at === undefined) return;
    const info = this.region.read(at, 512);
    if (info.readUInt32LE(0) !== 0x41615252 || info.readUInt32LE(484) !== 0x61417272) return;
    info.writeUInt32LE(this.freeCount(), 488);
    info.writeUInt32LE(this.free(1)[0] ?? 0xffffffff, 492);
    this.region.write(at, info);
  }

  clusterOffset(cluster: number): number {
    return this.layout.dataOffset + (cluster - 2) * this.layout.clusterSize;
  }
}
