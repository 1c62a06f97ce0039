import { execFile } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { FlotillaError } from '@flotilla/protocol';
import { findDataPartition } from './data-partition.js';
import type { DataPartition } from './data-partition.js';
import { FatFilesystem } from './fat-filesystem.js';
import type { Region } from './fat-volume.js';
import { readPartitionTable } from './partitions.js';
import type { Partition, PartitionTable } from './partitions.js';

/** Labels balenaOS and its relatives give the boot partition, in order of preference. */
const BOOT_LABELS = ['resin-boot', 'flash-boot', 'boot'];

export interface BootPartition {
  partition: Partition;
  label: string;
  fs: FatFilesystem;
}

/** A raw disk image opened for reading (and writing when `writable`), closed with `close()`. */
export class DiskImage {
  private constructor(
    private readonly fd: number,
    readonly size: number,
    readonly table: PartitionTable,
  ) {}

  static open(path: string, writable: boolean): DiskImage {
    let fd: number;
    try {
      fd = openSync(path, writable ? 'r+' : 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new FlotillaError(
        code === 'ENOENT' ? 'VALIDATION_FAILED' : 'DISK_IMAGE_INVALID',
        code === 'ENOENT' ? `no such file: ${path}` : `cannot open ${path}: ${code}`,
      );
    }
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile()) throw new FlotillaError('DISK_IMAGE_INVALID', `${path} is not a regular file`);
      const read = (position: number, length: number) => readAt(fd, position, length);
      return new DiskImage(fd, stat.size, readPartitionTable(read, stat.size));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** The boot partition: the first FAT one labelled like balenaOS's boot partition, else the first FAT one. */
  bootPartition(): BootPartition {
    const found: BootPartition[] = [];
    for (const partition of this.table.partitions) {
      const fs = FatFilesystem.open(this.region(partition));
      if (fs) found.push({ partition, fs, label: fs.label() });
    }
    const named = (name: string | undefined) => name !== undefined && BOOT_LABELS.includes(name.toLowerCase());
    const boot = found.find((p) => named(p.label) || named(p.partition.name)) ?? found[0];
    if (!boot)
      throw new FlotillaError(
        'BOOT_PARTITION_NOT_FOUND',
        `no FAT partition among the ${this.table.partitions.length} partition(s) of this ${this.table.scheme.toUpperCase()} image`,
      );
    return boot;
  }

  /** The ext4 data partition (data-partition.ts), or DATA_PARTITION_NOT_FOUND. */
  dataPartition(): DataPartition {
    return findDataPartition((position, length) => readAt(this.fd, position, length), this.table);
  }

  region(partition: Partition): Region {
    const { fd } = this;
    return {
      size: partition.size,
      read: (position, length) => {
        if (position < 0 || position + length > partition.size)
          throw new FlotillaError('DISK_IMAGE_INVALID', 'a read falls outside the boot partition');
        return readAt(fd, partition.offset + position, length);
      },
      write: (position, data) => {
        if (position < 0 || position + data.length > partition.size)
          throw new FlotillaError('DISK_IMAGE_INVALID', 'a write falls outside the boot partition');
        let done = 0;
        while (done < data.length)
          done += writeSync(fd, data, done, data.length - done, partition.offset + position + done);
      },
    };
  }

  close(): void {
    closeSync(this.fd);
  }
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buffer;
}

/**
 * DISK_IMAGE_IN_USE when a loop device is attached to the file (`losetup -j`): writing under a mounted filesystem would
 * corrupt it. Without losetup (not Linux) nothing can be attached this way and nothing is checked.
 */
export function assertNotInUse(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('losetup', ['-j', path], { timeout: 10_000 }, (error, stdout) => {
      if (error) {
        resolve(); // no losetup, or it could not look: nothing attached that we can know of
        return;
      }
      const device = stdout.split(':')[0]?.trim();
      if (device)
        reject(
          new FlotillaError(
            'DISK_IMAGE_IN_USE',
            `${path} is attached to ${device}; unmount it and run losetup -d ${device}`,
          ),
        );
      else resolve();
    });
  });
}
