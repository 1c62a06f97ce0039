import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { deviceLogLineSchema, type DeviceLogLine } from '@flotilla/protocol';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../store/private-files.js';
import { suppressionNotice, type LogQueue } from './log-queue.js';

export const DEFAULT_DISK_LOG_BYTES = 32 * 1024 * 1024;
const SEGMENT_BYTES_DIVISOR = 16;
/** How much of the disk log is read into memory at once; bounds RAM whatever the disk holds. */
const READ_CHUNK_BYTES = 256 * 1024;

interface Position {
  segment: number;
  offset: number;
}

interface CursorFile extends Position {
  suppressed: number;
}

/**
 * Persistent log queue (config.json `persistentLogging`): NDJSON segment files in `dir`, at most `maxBytes` in all.
 * A cursor file records the first unacknowledged byte, written atomically after each ack, so an agent restart or a
 * power cut resends at most the last unacknowledged batch and loses nothing acknowledged-or-not that reached disk.
 * On overflow the oldest segment is deleted and its unsent lines are counted for the suppression notice.
 */
export class DiskLogQueue implements LogQueue {
  private readonly segmentBytes: number;
  private segments: number[];
  private writeFd: number;
  private writeSize: number;
  /** Bytes in every segment but the one being written. */
  private closedBytes = 0;
  private cursor: Position;
  private suppressed: number;
  /** Lines read from disk from the cursor on (checked JSON texts), each with the position just after it. */
  private window: { json: string; end: Position }[] = [];
  private windowEnd: Position;
  private taken: { count: number; notice: boolean } | undefined;
  private dirty = false;

  constructor(
    private readonly dir: string,
    private readonly maxBytes = DEFAULT_DISK_LOG_BYTES,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
    this.segmentBytes = Math.max(4096, Math.floor(maxBytes / SEGMENT_BYTES_DIVISOR));
    this.segments = readdirSync(dir)
      .map((name) => /^(\d{10})\.ndjson$/.exec(name)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const saved = this.readCursor();
    this.suppressed = saved?.suppressed ?? 0;
    if (this.segments.length === 0) this.segments.push(saved ? saved.segment : 1);
    const first = this.segments[0]!;
    this.cursor =
      saved && saved.segment >= first
        ? { segment: saved.segment, offset: saved.offset }
        : { segment: first, offset: 0 };
    const last = this.segments[this.segments.length - 1]!;
    this.writeFd = openSync(this.segmentPath(last), 'a', PRIVATE_FILE_MODE);
    this.writeSize = fstatSync(this.writeFd).size;
    for (const segment of this.segments.slice(0, -1)) this.closedBytes += sizeOf(this.segmentPath(segment));
    this.windowEnd = { ...this.cursor };
  }

  push(line: DeviceLogLine): void {
    const data = Buffer.from(`${JSON.stringify(line)}\n`);
    if (this.writeSize > 0 && this.writeSize + data.length > this.segmentBytes) this.rollSegment();
    writeSync(this.writeFd, data);
    this.writeSize += data.length;
    this.dirty = true;
    while (this.closedBytes + this.writeSize > this.maxBytes && this.segments.length > 1) this.dropOldestSegment();
  }

  take(max: number): string[] {
    while (this.window.length < max && this.readMore()) {
      // keep reading chunks until enough lines or nothing left
    }
    const notice = this.suppressed > 0;
    const lines = this.window.slice(0, notice ? max - 1 : max).map((entry) => entry.json);
    this.taken = { count: lines.length, notice };
    return notice ? [JSON.stringify(suppressionNotice(this.suppressed, this.now())), ...lines] : lines;
  }

  ack(count: number): void {
    if (!this.taken || count <= 0) return;
    let lines = count;
    if (this.taken.notice) {
      this.suppressed = 0;
      lines -= 1;
    }
    lines = Math.min(lines, this.taken.count, this.window.length);
    if (lines > 0) {
      this.cursor = { ...this.window[lines - 1]!.end };
      this.window = this.window.slice(lines);
    }
    this.taken = undefined;
    // Segments wholly before the cursor are delivered: remove them (never the one being written).
    while (this.segments.length > 1 && this.segments[0]! < this.cursor.segment) {
      const path = this.segmentPath(this.segments.shift()!);
      this.closedBytes -= sizeOf(path);
      rmSync(path, { force: true });
    }
    this.writeCursor();
  }

  size(): number {
    // Bytes are what is known without reading the disk; report lines in memory plus a floor of one when more waits.
    return this.window.length + (this.comparePositions(this.windowEnd, this.writeHead()) < 0 ? 1 : 0);
  }

  flush(): void {
    if (!this.dirty) return;
    fdatasyncSync(this.writeFd);
    this.dirty = false;
  }

  close(): void {
    this.flush();
    closeSync(this.writeFd);
  }

  private segmentPath(segment: number): string {
    return join(this.dir, `${String(segment).padStart(10, '0')}.ndjson`);
  }

  private writeHead(): Position {
    return { segment: this.segments[this.segments.length - 1]!, offset: this.writeSize };
  }

  private rollSegment(): void {
    this.flush();
    closeSync(this.writeFd);
    this.closedBytes += this.writeSize;
    const next = this.segments[this.segments.length - 1]! + 1;
    this.segments.push(next);
    this.writeFd = openSync(this.segmentPath(next), 'a', PRIVATE_FILE_MODE);
    this.writeSize = 0;
  }

  private dropOldestSegment(): void {
    const oldest = this.segments.shift()!;
    const path = this.segmentPath(oldest);
    if (this.cursor.segment === oldest) {
      // Unsent lines in it are lost to overflow: count them so the notice tells the truth.
      const data = readFileSync(path);
      let lost = 0;
      for (let i = this.cursor.offset; i < data.length; i += 1) if (data[i] === 0x0a) lost += 1;
      this.suppressed += lost;
      this.cursor = { segment: this.segments[0]!, offset: 0 };
      this.window = this.window.filter((entry) => entry.end.segment !== oldest);
      if (this.windowEnd.segment === oldest) this.windowEnd = { ...this.cursor };
      this.writeCursor();
    }
    this.closedBytes -= sizeOf(path);
    rmSync(path, { force: true });
  }

  /** Reads the next chunk after windowEnd into the window; false when nothing is left. */
  private readMore(): boolean {
    const head = this.writeHead();
    if (this.comparePositions(this.windowEnd, head) >= 0) return false;
    const segment = this.windowEnd.segment;
    const size = segment === head.segment ? head.offset : sizeOf(this.segmentPath(segment));
    if (this.windowEnd.offset >= size) {
      const next = this.segments.find((s) => s > segment);
      if (next === undefined) return false;
      this.windowEnd = { segment: next, offset: 0 };
      return true;
    }
    const length = Math.min(READ_CHUNK_BYTES, size - this.windowEnd.offset);
    const buffer = Buffer.alloc(length);
    const fd = openSync(this.segmentPath(segment), 'r');
    try {
      readSync(fd, buffer, 0, length, this.windowEnd.offset);
    } finally {
      closeSync(fd);
    }
    let start = 0;
    for (let i = 0; i < buffer.length; i += 1) {
      if (buffer[i] !== 0x0a) continue;
      const end = { segment, offset: this.windowEnd.offset + i + 1 };
      const json = buffer.subarray(start, i).toString('utf8');
      if (isLogLine(json)) this.window.push({ json, end });
      else this.suppressed += 1; // a torn or corrupt line (power cut mid-write): counted, not shipped
      start = i + 1;
    }
    if (start === 0) {
      // A line longer than the chunk cannot come from push (lines are bounded); skip the damaged tail.
      this.windowEnd = { segment, offset: size };
      this.suppressed += 1;
      return true;
    }
    this.windowEnd = { segment, offset: this.windowEnd.offset + start };
    return true;
  }

  private comparePositions(a: Position, b: Position): number {
    return a.segment === b.segment ? a.offset - b.offset : a.segment - b.segment;
  }

  private readCursor(): CursorFile | undefined {
    try {
      const value = JSON.parse(readFileSync(join(this.dir, 'cursor.json'), 'utf8')) as Partial<CursorFile>;
      if (typeof value.segment === 'number' && typeof value.offset === 'number') {
        return {
          segment: value.segment,
          offset: value.offset,
          suppressed: typeof value.suppressed === 'number' ? value.suppressed : 0,
        };
      }
    } catch {
      // absent or damaged: start from the oldest segment (resending beats losing)
    }
    return undefined;
  }

  private writeCursor(): void {
    const path = join(this.dir, 'cursor.json');
    const body: CursorFile = { ...this.cursor, suppressed: this.suppressed };
    writeFileSync(`${path}.tmp`, JSON.stringify(body), { mode: PRIVATE_FILE_MODE });
    renameSync(`${path}.tmp`, path);
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function isLogLine(text: string): boolean {
  try {
    return deviceLogLineSchema.safeParse(JSON.parse(text)).success;
  } catch {
    return false;
  }
}
