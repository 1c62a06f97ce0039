import { EngineFrames } from '../engine/engine-frames.js';

/**
 * Turns the bytes of an engine log stream (`GET /containers/:id/logs`) into lines, in one pass and without
 * intermediate streams: a device following chatty services spends its log CPU here.
 *
 * Without a TTY the engine multiplexes stdout and stderr into frames (engine/engine-frames.ts), and a line may be
 * cut across frames; with a TTY the stream is the raw terminal output.
 * Lines end at LF (a CR before it is dropped); bytes are decoded as UTF-8 only once a line is whole, so a character
 * cut between chunks is never mangled. A line longer than `maxLineBytes` is emitted in pieces so memory stays bounded.
 */
export class EngineLogSplitter {
  /** Unfinished line per stream: [stdout, stderr]. */
  private readonly partial: [Buffer[], Buffer[]] = [[], []];
  private readonly partialBytes: [number, number] = [0, 0];
  /** Splits the multiplexed frames (no TTY); payload pieces arrive as views of the chunk. */
  private readonly frames = new EngineFrames((output, data) =>
    this.payload(data, 0, data.length, output === 'stderr' ? 1 : 0),
  );

  constructor(
    private readonly tty: boolean,
    private readonly onLine: (text: string, isStdErr: boolean) => void,
    private readonly maxLineBytes = 64 * 1024,
  ) {}

  write(chunk: Buffer): void {
    if (this.tty) this.payload(chunk, 0, chunk.length, 0);
    else this.frames.write(chunk);
  }

  /** The stream ended: an unfinished last line is still a line. */
  end(): void {
    this.flushPartial(0);
    this.flushPartial(1);
  }

  private payload(buffer: Buffer, start: number, end: number, stream: 0 | 1): void {
    let from = start;
    while (from < end) {
      const newline = buffer.indexOf(0x0a, from);
      if (newline === -1 || newline >= end) {
        this.keep(buffer.subarray(from, end), stream);
        return;
      }
      this.emit(buffer, from, newline, stream);
      from = newline + 1;
    }
  }

  private emit(buffer: Buffer, start: number, end: number, stream: 0 | 1): void {
    let text: string;
    if (this.partialBytes[stream] === 0) {
      const last = end > start && buffer[end - 1] === 0x0d ? end - 1 : end;
      text = buffer.toString('utf8', start, last);
    } else {
      const pieces = this.partial[stream];
      pieces.push(buffer.subarray(start, end));
      const whole = Buffer.concat(pieces);
      pieces.length = 0;
      this.partialBytes[stream] = 0;
      const last = whole.length > 0 && whole[whole.length - 1] === 0x0d ? whole.length - 1 : whole.length;
      text = whole.toString('utf8', 0, last);
    }
    this.onLine(text, stream === 1);
  }

  private keep(piece: Buffer, stream: 0 | 1): void {
    if (piece.length === 0) return;
    // Copied: the chunk's memory is not ours to hold on to.
    this.partial[stream].push(Buffer.from(piece));
    this.partialBytes[stream] += piece.length;
    if (this.partialBytes[stream] >= this.maxLineBytes) this.flushPartial(stream);
  }

  private flushPartial(stream: 0 | 1): void {
    if (this.partialBytes[stream] === 0) return;
    const whole = Buffer.concat(this.partial[stream]);
    this.partial[stream].length = 0;
    this.partialBytes[stream] = 0;
    this.onLine(whole.toString('utf8'), stream === 1);
  }
}

/** An engine timestamp split into numbers: whole seconds as epoch milliseconds, and the nanoseconds within them. */
export interface EngineStamp {
  secondMs: number;
  nanos: number;
}

let cachedSecond = '';
let cachedSecondMs = 0;

/**
 * Parses `2026-11-23T08:40:01.123456789Z` (RFC 3339 in UTC, up to nine fraction digits, as the engine stamps lines)
 * held in `text` from 0 to `end`. Consecutive lines mostly share their second, so that part is parsed once.
 */
export function parseEngineStamp(text: string, end = text.length): EngineStamp | undefined {
  if (end < 20 || text.charCodeAt(end - 1) !== 0x5a /* Z */) return undefined;
  const second = text.slice(0, 19);
  let secondMs: number;
  if (second === cachedSecond) {
    secondMs = cachedSecondMs;
  } else {
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$/.test(second)) return undefined;
    secondMs = Date.parse(`${second}Z`);
    if (Number.isNaN(secondMs)) return undefined;
    cachedSecond = second;
    cachedSecondMs = secondMs;
  }
  let nanos = 0;
  if (end > 20) {
    const digits = end - 21;
    if (text.charCodeAt(19) !== 0x2e /* . */ || digits < 1 || digits > 9) return undefined;
    for (let i = 20; i < end - 1; i += 1) {
      const d = text.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return undefined;
      nanos = nanos * 10 + d;
    }
    for (let i = digits; i < 9; i += 1) nanos *= 10;
  }
  return { secondMs, nanos };
}

/** Negative, zero or positive as `a` is before, at or after `b`. */
export function compareStamps(a: EngineStamp, b: EngineStamp): number {
  return a.secondMs === b.secondMs ? a.nanos - b.nanos : a.secondMs - b.secondMs;
}

/** The engine's `since` query value for a stamp: `<seconds>.<nanoseconds>`. */
export function sinceParameter(stamp: EngineStamp): string {
  return `${Math.floor(stamp.secondMs / 1000)}.${String(stamp.nanos).padStart(9, '0')}`;
}
