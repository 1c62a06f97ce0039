import { FlotillaError } from '@flotilla/protocol';
import { FatTable, corrupt, readFatLayout } from './fat-volume.js';
import type { FatLayout, Region } from './fat-volume.js';
import {
  displayShortName,
  dosDateTime,
  exactShortName,
  generateShortName,
  isValidLongName,
  longNamePart,
  longNameSlots,
  shortNameChecksum,
} from './fat-names.js';

const ATTR_DIRECTORY = 0x10;
const ATTR_VOLUME = 0x08;
const ATTR_LFN = 0x0f;
const FREE = 0xe5;

export interface DirEntry {
  /** The long name when there is one, else the short name. */
  name: string;
  directory: boolean;
  size: number;
  cluster: number;
  /** Byte offsets of every slot of the entry (long-name slots first, the short entry last). */
  slots: number[];
}

/** A directory: `cluster` 0 is the fixed FAT12/16 root. */
interface Dir {
  cluster: number;
}

/**
 * A FAT12/16/32 filesystem in a partition, read and written in place without mounting.
 *
 * INVARIANT (crash safety): a write never overwrites data the current directory tree points at until the new data is
 * complete. A file's new clusters are written first, then the FAT (both copies), then the directory entry is switched
 * to them (one 32-byte slot, inside one sector), and only then are the old clusters freed. A failure or crash at any
 * point leaves the old file readable; at worst clusters are leaked, which `fsck` reclaims.
 */
export class FatFilesystem {
  readonly fat: FatTable;

  private constructor(
    private readonly region: Region,
    readonly layout: FatLayout,
  ) {
    this.fat = new FatTable(region, layout);
  }

  /** The filesystem in `region`, or undefined when it holds none. */
  static open(region: Region): FatFilesystem | undefined {
    const layout = readFatLayout(region);
    return layout ? new FatFilesystem(region, layout) : undefined;
  }

  /** The volume label: the root directory's label entry (what `mlabel`/`fatlabel` set), else the boot sector's. */
  label(): string {
    for (const offset of this.slotOffsets(this.root())) {
      const slot = this.region.read(offset, 32);
      if (slot[0] === 0) break;
      if (slot[0] !== FREE && (slot[11] ?? 0) !== ATTR_LFN && ((slot[11] ?? 0) & ATTR_VOLUME) !== 0)
        return slot.subarray(0, 11).toString('latin1').trimEnd();
    }
    return this.layout.bootLabel === 'NO NAME' ? '' : this.layout.bootLabel;
  }

  list(path: string): DirEntry[] {
    const dir = this.findDir(splitPath(path), false);
    return dir ? this.entries(dir) : [];
  }

  readFile(path: string): Buffer | undefined {
    const parts = splitPath(path);
    const name = parts.pop();
    const dir = this.findDir(parts, false);
    const entry = dir && name !== undefined ? this.lookup(dir, name) : undefined;
    if (!entry || entry.directory) return undefined;
    const clusters = this.fat.chain(entry.cluster);
    if (clusters.length * this.layout.clusterSize < entry.size) throw corrupt(`${path} is shorter than its size`);
    const data = Buffer.alloc(entry.size);
    let at = 0;
    for (const cluster of clusters) {
      if (at >= entry.size) break;
      const n = Math.min(this.layout.clusterSize, entry.size - at);
      this.region.read(this.fat.clusterOffset(cluster), n).copy(data, at);
      at += n;
    }
    return data;
  }

  /**
   * Writes `data` to `path` (folders are made as needed), replacing a file of the same name (any case). The space is
   * checked before anything is written: BOOT_PARTITION_FULL leaves the filesystem untouched.
   */
  writeFile(path: string, data: Buffer, now = new Date()): void {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined || ![...parts, name].every(isValidLongName))
      throw new FlotillaError('VALIDATION_FAILED', `invalid file name ${JSON.stringify(path)}`);
    const existing = parts.length === 0 ? this.root() : this.findDir(parts, false);
    const old = existing ? this.lookup(existing, name) : undefined;
    if (old?.directory) throw new FlotillaError('VALIDATION_FAILED', `${path} is a folder in the image`);
    const needed = Math.ceil(data.length / this.layout.clusterSize);
    // Worst case besides the data: one cluster per folder to make, one more per directory that must grow.
    const reserve = parts.length + 1;
    const available = this.fat.freeCount();
    if (needed + (old ? 0 : reserve) > available)
      throw new FlotillaError(
        'BOOT_PARTITION_FULL',
        `the boot partition has ${available * this.layout.clusterSize} bytes free; ${path} needs ${needed * this.layout.clusterSize}`,
      );
    // The fixed FAT12/16 root cannot grow: check it has the entries this write adds before writing anything.
    const top = parts[0];
    if (parts.length === 0 && !old) this.assertRoom(this.root(), name);
    if (top !== undefined && !this.lookup(this.root(), top)) this.assertRoom(this.root(), top);
    const dir = this.findDir(parts, true, now) as Dir;
    const clusters = this.fat.free(needed);
    clusters.forEach((cluster, i) => {
      const chunk = Buffer.alloc(this.layout.clusterSize);
      data.copy(chunk, 0, i * this.layout.clusterSize, (i + 1) * this.layout.clusterSize);
      this.region.write(this.fat.clusterOffset(cluster), chunk);
    });
    this.fat.link(clusters);
    this.fat.flush();
    const first = clusters[0] ?? 0;
    if (old) {
      const slot = old.slots[old.slots.length - 1] as number;
      const short = this.region.read(slot, 32);
      setCluster(short, first);
      short.writeUInt32LE(data.length, 28);
      stamp(short, now, false);
      this.region.write(slot, short);
      for (const cluster of this.fat.chain(old.cluster)) this.fat.set(cluster, 0);
      this.fat.flush();
    } else {
      this.addEntry(dir, name, 0x20, first, data.length, now);
    }
  }

  /** BOOT_PARTITION_FULL when the fixed root has no run of free entries for `name`; cluster folders grow instead. */
  private assertRoom(dir: Dir, name: string): void {
    if (dir.cluster !== 0) return;
    const slots = exactShortName(name) ? 1 : 1 + Math.ceil(name.length / 13);
    if (freeRun(this.readSlots(this.slotOffsets(dir)), slots) === undefined)
      throw new FlotillaError('BOOT_PARTITION_FULL', 'the root folder of the boot partition has no free entry');
  }

  private root(): Dir {
    return { cluster: this.layout.type === 32 ? this.layout.rootCluster : 0 };
  }

  private slotOffsets(dir: Dir): number[] {
    if (dir.cluster === 0) {
      const root = this.layout.rootDir as { offset: number; entries: number };
      return Array.from({ length: root.entries }, (_, i) => root.offset + i * 32);
    }
    const perCluster = this.layout.clusterSize / 32;
    return this.fat
      .chain(dir.cluster)
      .flatMap((cluster) => Array.from({ length: perCluster }, (_, i) => this.fat.clusterOffset(cluster) + i * 32));
  }

  private entries(dir: Dir): DirEntry[] {
    const entries: DirEntry[] = [];
    let pending: { parts: string[]; slots: number[]; checksum: number } | undefined;
    const offsets = this.slotOffsets(dir);
    const raw = this.readSlots(offsets);
    for (const [i, offset] of offsets.entries()) {
      const slot = raw.subarray(i * 32, i * 32 + 32);
      if (slot[0] === 0) break;
      if (slot[0] === FREE) {
        pending = undefined;
        continue;
      }
      const attr = slot[11] ?? 0;
      if (attr === ATTR_LFN) {
        if (((slot[0] ?? 0) & 0x40) !== 0) pending = { parts: [], slots: [], checksum: slot[13] ?? 0 };
        pending?.parts.unshift(longNamePart(slot));
        pending?.slots.push(offset);
        continue;
      }
      const short = Buffer.from(slot.subarray(0, 11));
      if ((attr & ATTR_VOLUME) !== 0 || short[0] === 0x2e) {
        pending = undefined;
        continue;
      }
      if (short[0] === 0x05) short[0] = FREE;
      const long = pending && pending.checksum === shortNameChecksum(short) ? pending : undefined;
      entries.push({
        name: long ? long.parts.join('') : lowerByFlags(displayShortName(short), slot[12] ?? 0),
        directory: (attr & ATTR_DIRECTORY) !== 0,
        size: slot.readUInt32LE(28),
        cluster: ((this.layout.type === 32 ? slot.readUInt16LE(20) : 0) << 16) | slot.readUInt16LE(26),
        slots: [...(long?.slots ?? []), offset],
      });
      pending = undefined;
    }
    return entries;
  }

  private readSlots(offsets: number[]): Buffer {
    // Reads run by run: the fixed root and each cluster are contiguous.
    const out = Buffer.alloc(offsets.length * 32);
    let i = 0;
    while (i < offsets.length) {
      let j = i + 1;
      while (j < offsets.length && offsets[j] === (offsets[j - 1] as number) + 32) j++;
      this.region.read(offsets[i] as number, (j - i) * 32).copy(out, i * 32);
      i = j;
    }
    return out;
  }

  private lookup(dir: Dir, name: string): DirEntry | undefined {
    const wanted = name.toUpperCase();
    return this.entries(dir).find((entry) => entry.name.toUpperCase() === wanted);
  }

  private findDir(parts: string[], create: boolean, now = new Date()): Dir | undefined {
    let dir = this.root();
    for (const part of parts) {
      const entry = this.lookup(dir, part);
      if (entry && !entry.directory) throw new FlotillaError('VALIDATION_FAILED', `${part} is a file in the image`);
      if (entry) {
        dir = { cluster: entry.cluster };
        continue;
      }
      if (!create) return undefined;
      dir = this.makeDir(dir, part, now);
    }
    return dir;
  }

  private makeDir(parent: Dir, name: string, now: Date): Dir {
    const [cluster] = this.fat.free(1);
    if (cluster === undefined) throw new FlotillaError('BOOT_PARTITION_FULL', 'the boot partition has no free cluster');
    const block = Buffer.alloc(this.layout.clusterSize);
    const dot = shortEntry(Buffer.from('.'.padEnd(11), 'latin1'), ATTR_DIRECTORY, cluster, 0, now);
    const dotdot = shortEntry(Buffer.from('..'.padEnd(11), 'latin1'), ATTR_DIRECTORY, parent.cluster, 0, now);
    // '..' of a folder in the root names cluster 0, also on FAT32.
    if (parent.cluster === this.root().cluster) setCluster(dotdot, 0);
    dot.copy(block, 0);
    dotdot.copy(block, 32);
    this.region.write(this.fat.clusterOffset(cluster), block);
    this.fat.link([cluster]);
    this.fat.flush();
    this.addEntry(parent, name, ATTR_DIRECTORY, cluster, 0, now);
    return { cluster };
  }

  /** Writes a new entry (long-name slots and short entry) into free slots, growing the directory when it must. */
  private addEntry(dir: Dir, name: string, attr: number, cluster: number, size: number, now: Date): void {
    const existing = this.entries(dir);
    const exact = exactShortName(name);
    const taken = new Set(
      existing.flatMap((entry) => {
        const slot = this.region.read(entry.slots[entry.slots.length - 1] as number, 11);
        return [displayShortName(slot)];
      }),
    );
    const short = exact && !taken.has(name) ? exact : generateShortName(name, taken);
    const slots = [
      ...(exact && short === exact ? [] : longNameSlots(name, short)),
      shortEntry(short, attr, cluster, size, now),
    ];
    let offsets = this.slotOffsets(dir);
    let start = freeRun(this.readSlots(offsets), slots.length);
    if (start === undefined) {
      if (dir.cluster === 0)
        throw new FlotillaError('BOOT_PARTITION_FULL', 'the root folder of the boot partition has no free entry');
      const [extra] = this.fat.free(1);
      if (extra === undefined) throw new FlotillaError('BOOT_PARTITION_FULL', 'the boot partition has no free cluster');
      this.region.write(this.fat.clusterOffset(extra), Buffer.alloc(this.layout.clusterSize));
      const chain = this.fat.chain(dir.cluster);
      this.fat.link([...chain, extra]);
      this.fat.flush();
      offsets = this.slotOffsets(dir);
      start = freeRun(this.readSlots(offsets), slots.length) as number;
    }
    // The short entry goes last: until it is written, the long-name slots before it are orphans that readers skip.
    slots.forEach((slot, i) => {
      this.region.write(offsets[start + i] as number, slot);
    });
  }
}

function splitPath(path: string): string[] {
  return path.split('/').filter((part) => part !== '');
}

/** Short names stored upper case may carry NT case flags: 0x08 base lower case, 0x10 extension lower case. */
function lowerByFlags(name: string, flags: number): string {
  const dot = name.indexOf('.');
  const base = dot < 0 ? name : name.slice(0, dot);
  const ext = dot < 0 ? '' : name.slice(dot + 1);
  const b = flags & 0x08 ? base.toLowerCase() : base;
  const e = flags & 0x10 ? ext.toLowerCase() : ext;
  return e ? `${b}.${e}` : b;
}

/** The first index of `count` consecutive free slots (deleted or past the end marker). */
function freeRun(raw: Buffer, count: number): number | undefined {
  let run = 0;
  for (let i = 0; i < raw.length / 32; i++) {
    const first = raw[i * 32];
    run = first === 0 || first === FREE ? run + 1 : 0;
    if (run === count) return i - count + 1;
  }
  return undefined;
}

function shortEntry(name: Buffer, attr: number, cluster: number, size: number, now: Date): Buffer {
  const slot = Buffer.alloc(32);
  name.copy(slot, 0, 0, 11);
  slot[11] = attr;
  setCluster(slot, cluster);
  slot.writeUInt32LE(size, 28);
  stamp(slot, now, true);
  return slot;
}

function setCluster(slot: Buffer, cluster: number): void {
  slot.writeUInt16LE(cluster >>> 16, 20);
  slot.writeUInt16LE(cluster & 0xffff, 26);
}

function stamp(slot: Buffer, now: Date, created: boolean): void {
  const { date, time } = dosDateTime(now);
  if (created) {
    slot.writeUInt16LE(time, 14);
    slot.writeUInt16LE(date, 16);
  }
  slot.writeUInt16LE(date, 18);
  slot.writeUInt16LE(time, 22);
  slot.writeUInt16LE(date, 24);
}
