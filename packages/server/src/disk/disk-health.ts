import { statfs } from 'node:fs/promises';

export interface DiskStatus {
  ok: boolean;
  /** Free bytes on the data folder's file system (for unprivileged writers); undefined without a data folder. */
  freeBytes: number | undefined;
  minFreeBytes: number;
  reason?: string;
}

/** Frees space when the disk runs low; asks `enough()` between removals so it stops as soon as there is room. */
export type Reclaimer = (enough: () => Promise<boolean>) => Promise<{ removed: number; bytes: number }>;

export interface DiskHealthLog {
  warn: (fields: object, message: string) => void;
  error: (fields: object, message: string) => void;
}

/** A failed write keeps the server unhealthy until this much space came back since, or this long passed. */
const RECOVERED_BYTES = 1024 * 1024;
const FAILURE_REMEMBERED_MS = 5 * 60 * 1000;

/**
 * The state of the data folder's disk: unhealthy while free space is below `minFreeBytes` or since a write failed
 * for lack of space (until space came back), and the place where space is reclaimed from (abandoned registry
 * uploads) when it runs low, before a write is refused and in a periodic check.
 *
 * INVARIANT: statfs is one cheap system call, so status() measures afresh every time: health reports recover as
 * soon as space is freed, by whatever means.
 */
export class DiskHealth {
  private failure: { at: number; freeBytes: number | undefined } | undefined;
  private readonly reclaimers: Reclaimer[] = [];
  private timer: NodeJS.Timeout | undefined;
  private checking: Promise<void> | undefined;
  private reportedLow = false;
  private readonly noted = new WeakSet<object>();

  constructor(
    readonly dir: string | undefined,
    readonly minFreeBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  async freeBytes(): Promise<number | undefined> {
    if (!this.dir) return undefined;
    try {
      const stats = await statfs(this.dir);
      return stats.bavail * stats.bsize;
    } catch {
      return undefined;
    }
  }

  /** Free space is below the threshold. */
  async low(): Promise<boolean> {
    const free = await this.freeBytes();
    return free !== undefined && free < this.minFreeBytes;
  }

  /** A write just failed for lack of space; the same error reported again (by another layer) counts once. */
  async noteNoSpace(error?: unknown): Promise<void> {
    if (typeof error === 'object' && error !== null) {
      if (this.noted.has(error)) return;
      this.noted.add(error);
    }
    this.failure = { at: this.now(), freeBytes: await this.freeBytes() };
  }

  async status(): Promise<DiskStatus> {
    const freeBytes = await this.freeBytes();
    const base = { freeBytes, minFreeBytes: this.minFreeBytes };
    if (freeBytes !== undefined && freeBytes < this.minFreeBytes)
      return {
        ...base,
        ok: false,
        reason: `${mb(freeBytes)} MB free on the data folder, below the ${mb(this.minFreeBytes)} MB threshold`,
      };
    const failure = this.failure;
    if (failure) {
      const spaceCameBack =
        freeBytes !== undefined && failure.freeBytes !== undefined && freeBytes >= failure.freeBytes + RECOVERED_BYTES;
      if (spaceCameBack || this.now() - failure.at > FAILURE_REMEMBERED_MS) this.failure = undefined;
      else return { ...base, ok: false, reason: 'a write failed for lack of space and no space was freed since' };
    }
    return { ...base, ok: true };
  }

  addReclaimer(reclaimer: Reclaimer): void {
    this.reclaimers.push(reclaimer);
  }

  /** Runs the reclaimers in turn until free space is back above the threshold; returns what they freed. */
  async reclaim(): Promise<{ removed: number; bytes: number }> {
    const total = { removed: 0, bytes: 0 };
    const enough = async () => !(await this.low());
    for (const reclaimer of this.reclaimers) {
      if (await enough()) break;
      const freed = await reclaimer(enough);
      total.removed += freed.removed;
      total.bytes += freed.bytes;
    }
    return total;
  }

  /** Checks every `intervalMs` and reclaims when space is low; one check at a time. */
  start(intervalMs: number, log: DiskHealthLog): void {
    if (!this.dir || intervalMs <= 0) return;
    const check = async () => {
      if (!(await this.low())) {
        this.reportedLow = false;
        return;
      }
      const freed = await this.reclaim();
      if (freed.removed === 0 && this.reportedLow) return;
      this.reportedLow = true;
      log.warn(
        { freeBytes: await this.freeBytes(), minFreeBytes: this.minFreeBytes, ...freed },
        freed.removed > 0 ? 'disk space low: abandoned uploads removed' : 'disk space low: nothing left to reclaim',
      );
    };
    this.timer = setInterval(() => {
      this.checking ??= check()
        .catch((error: unknown) => log.error({ err: error }, 'disk space check failed'))
        .finally(() => {
          this.checking = undefined;
        });
    }, intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.checking;
  }
}

function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}
