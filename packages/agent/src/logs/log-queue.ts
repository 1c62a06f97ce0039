import type { DeviceLogLine } from '@flotilla/protocol';

/**
 * Lines waiting to be shipped, kept serialized (each line is turned into JSON once, when queued). `take` reads from
 * the head without removing; `ack` removes what the control plane confirmed. INVARIANT: a line leaves the queue only by ack (delivered) or by overflow (counted, then announced by
 * one "Suppressed N message(s)" system line), never silently.
 */
export interface LogQueue {
  push(line: DeviceLogLine): void;
  /** Up to `max` lines from the head as JSON texts, oldest first, starting with any suppression notice. */
  take(max: number): string[];
  /** Removes the first `count` lines returned by the last `take`. */
  ack(count: number): void;
  /** Lines waiting (not counting the suppression notice). */
  size(): number;
  /** Make what is queued durable (no-op in RAM). */
  flush(): void;
  close(): void;
}

export const DEFAULT_RAM_LOG_BYTES = 8 * 1024 * 1024;

/** What a queued line costs: the bytes of its JSON and a newline, as it is stored and shipped. */
export function lineBytes(line: DeviceLogLine): number {
  return jsonBytes(JSON.stringify(line));
}

function jsonBytes(json: string): number {
  return Buffer.byteLength(json) + 1;
}

export function suppressionNotice(count: number, now: number): DeviceLogLine {
  return { message: `Suppressed ${count} message(s) due to a full log buffer`, timestamp: now, isSystem: true };
}

/**
 * A byte-bounded FIFO in memory: on overflow the oldest lines go and are counted. Positions are absolute sequence
 * numbers, so lines dropped by overflow between a take and its ack are not acknowledged twice.
 */
export class MemoryLogQueue implements LogQueue {
  private lines: string[] = [];
  /** Sequence number of lines[0]. */
  private base = 0;
  /** Sequence number of the first line not yet acknowledged or dropped. */
  private head = 0;
  private bytes = 0;
  private suppressed = 0;
  private taken: { start: number; notice: boolean } | undefined;

  constructor(
    private readonly maxBytes = DEFAULT_RAM_LOG_BYTES,
    private readonly now: () => number = Date.now,
  ) {}

  push(line: DeviceLogLine): void {
    const json = JSON.stringify(line);
    this.lines.push(json);
    this.bytes += jsonBytes(json);
    while (this.bytes > this.maxBytes && this.head < this.end()) {
      this.advanceHead();
      this.suppressed += 1;
    }
    this.compact();
  }

  take(max: number): string[] {
    const out: string[] = [];
    const notice = this.suppressed > 0;
    if (notice) out.push(JSON.stringify(suppressionNotice(this.suppressed, this.now())));
    for (let seq = this.head; seq < this.end() && out.length < max; seq += 1) out.push(this.lines[seq - this.base]!);
    this.taken = { start: this.head, notice };
    return out;
  }

  ack(count: number): void {
    if (!this.taken || count <= 0) return;
    let lines = count;
    if (this.taken.notice) {
      this.suppressed = 0;
      lines -= 1;
    }
    const until = Math.min(this.taken.start + lines, this.end());
    while (this.head < until) this.advanceHead();
    this.taken = undefined;
    this.compact();
  }

  size(): number {
    return this.end() - this.head;
  }

  flush(): void {}

  close(): void {}

  private end(): number {
    return this.base + this.lines.length;
  }

  private advanceHead(): void {
    this.bytes -= jsonBytes(this.lines[this.head - this.base]!);
    this.head += 1;
  }

  /** Drop consumed slots once they are the larger part, keeping push and ack amortised O(1). */
  private compact(): void {
    const consumed = this.head - this.base;
    if (consumed > 1024 && consumed * 2 > this.lines.length) {
      this.lines = this.lines.slice(consumed);
      this.base = this.head;
    }
  }
}
