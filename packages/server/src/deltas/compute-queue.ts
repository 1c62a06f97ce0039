/**
 * The deltas' computations, app and OS alike: at most `concurrency` at once (each runs an xdelta3 encoder of up to
 * ~800 MB RSS and holds its inputs on disk), one per key (a pair asked for again while it runs is not started twice).
 */
export class ComputeQueue {
  private readonly running = new Map<string, Promise<void>>();
  private readonly waiting: Array<() => void> = [];
  private active = 0;
  private readonly abort = new AbortController();
  private readonly concurrency: number;

  constructor(concurrency = 1) {
    this.concurrency = Math.max(1, concurrency);
  }

  /** Keys queued or running. */
  get size(): number {
    return this.running.size;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /**
   * Runs `job` once a slot is free, unless `key` is already queued or running, or the queue is closed. INVARIANT:
   * `job` handles its own errors (a rejection is swallowed here so it never becomes an unhandled one).
   */
  run(key: string, job: (signal: AbortSignal) => Promise<void>): void {
    if (this.running.has(key) || this.abort.signal.aborted) return;
    const done = (async () => {
      await this.slot();
      try {
        if (!this.abort.signal.aborted) await job(this.abort.signal);
      } catch {
        // the job's own: see the INVARIANT above
      } finally {
        this.active -= 1;
        this.waiting.shift()?.();
        this.running.delete(key);
      }
    })();
    this.running.set(key, done);
  }

  /** Stops queued work, aborts computations in progress and waits for them. */
  async close(): Promise<void> {
    this.abort.abort();
    for (const wake of this.waiting.splice(0)) wake();
    await Promise.allSettled([...this.running.values()]);
  }

  private async slot(): Promise<void> {
    if (this.active < this.concurrency) {
      this.active += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
  }
}
