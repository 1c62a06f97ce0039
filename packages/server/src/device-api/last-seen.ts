import type { Db } from '../db/database.js';

/**
 * Polls mark a device as seen, but writing on every poll would make the hottest read path a write path. Seen
 * devices are collected and written in one statement per flush; each device at most once per `minGapMs`.
 */
export class LastSeenTracker {
  private pending = new Set<number>();
  private readonly writtenAt = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly flushMs = 2_000,
    private readonly minGapMs = 60_000,
    /** Told which devices' last_seen_at was written, once the write is done (their live feeds change). */
    private readonly onWritten: (ids: number[]) => void = () => undefined,
  ) {}

  seen(deviceId: number): void {
    const last = this.writtenAt.get(deviceId);
    if (last !== undefined && Date.now() - last < this.minGapMs) return;
    this.pending.add(deviceId);
    this.timer ??= setTimeout(() => void this.flush(), this.flushMs);
    this.timer.unref();
  }

  /** Records that the device's last_seen_at was just written by someone else (a state report). */
  written(deviceId: number): void {
    this.writtenAt.set(deviceId, Date.now());
    this.pending.delete(deviceId);
  }

  flush(): Promise<void> {
    this.timer = undefined;
    const ids = [...this.pending];
    this.pending = new Set();
    if (ids.length === 0) return this.flushing;
    const at = Date.now();
    for (const id of ids) this.writtenAt.set(id, at);
    if (this.writtenAt.size > 500_000) this.writtenAt.clear();
    this.flushing = this.flushing
      .then(async () => {
        const stamp = new Date(at).toISOString();
        for (let i = 0; i < ids.length; i += 500) {
          await this.db
            .updateTable('devices')
            .set({ last_seen_at: stamp })
            .where('id', 'in', ids.slice(i, i + 500))
            .execute();
        }
        this.onWritten(ids);
      })
      .catch(() => undefined);
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    await this.flush();
  }
}
