import type { Readable } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import type { DeviceLogLine } from '@flotilla/protocol';
import { asDeviceLogLine } from './log-line.js';

export interface NdjsonReadOptions {
  /** `content-encoding` of the request: gzip, deflate or identity. */
  encoding: string | undefined;
  /** Longest line accepted (bytes, decompressed); longer ones are skipped and counted. */
  maxLineBytes?: number;
  /** Most decompressed bytes read from one request: bounds a gzip bomb. */
  maxTotalBytes?: number;
  /** Receives each batch of valid lines as they arrive, so a long request shows up live. */
  onLines: (lines: DeviceLogLine[]) => Promise<void> | void;
}

export interface NdjsonReadResult {
  accepted: number;
  rejected: number;
}

export class LogStreamError extends Error {
  constructor(
    readonly kind: 'encoding' | 'too-large' | 'corrupt',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Reads a device's log stream (NDJSON, usually gzip) as it arrives. A malformed or oversized line is skipped and
 * counted, never fatal: one bad line must not cost the device the rest of its batch.
 */
export async function readLogStream(body: Readable, options: NdjsonReadOptions): Promise<NdjsonReadResult> {
  const maxLine = options.maxLineBytes ?? 256 * 1024;
  const maxTotal = options.maxTotalBytes ?? 64 * 1024 * 1024;
  const encoding = (options.encoding ?? 'identity').toLowerCase();
  let source: Readable;
  if (encoding === 'gzip' || encoding === 'x-gzip') source = body.pipe(createGunzip());
  else if (encoding === 'deflate') source = body.pipe(createInflate());
  else if (encoding === 'identity' || encoding === '') source = body;
  else throw new LogStreamError('encoding', `unsupported content-encoding ${encoding}`);
  body.on('error', (error) => source.destroy(error));

  const result: NdjsonReadResult = { accepted: 0, rejected: 0 };
  // WARNING: what storing the lines throws (a full disk, a lost database) is the server's failure, not a corrupt
  // stream, and must reach the caller as it is.
  let storeFailure: { error: unknown } | undefined;
  let pending = Buffer.alloc(0);
  let total = 0;
  let skippingLongLine = false;
  const parseLines = async (chunk: Buffer) => {
    const batch: DeviceLogLine[] = [];
    let from = 0;
    if (skippingLongLine) {
      // The rest of an over-long line is dropped as it arrives, never kept or scanned again.
      const end = chunk.indexOf(0x0a);
      if (end === -1) return;
      skippingLongLine = false;
      from = end + 1;
    }
    let data = pending.length ? Buffer.concat([pending, chunk.subarray(from)]) : chunk.subarray(from);
    let start = 0;
    // WARNING: a gzip bomb decompresses to tens of MiB of newlines; blank lines must cost next to nothing.
    for (let i = data.indexOf(0x0a); i !== -1; i = data.indexOf(0x0a, start)) {
      const line = i === start ? 'empty' : parseLine(data.subarray(start, i));
      if (line === 'empty') {
        // blank separator lines are allowed
      } else if (line) {
        batch.push(line);
      } else {
        result.rejected += 1;
      }
      start = i + 1;
    }
    data = data.subarray(start);
    if (data.length > maxLine) {
      result.rejected += 1;
      skippingLongLine = true;
      data = Buffer.alloc(0);
    }
    pending = Buffer.from(data);
    if (batch.length) {
      result.accepted += batch.length;
      try {
        await options.onLines(batch);
      } catch (error) {
        storeFailure = { error };
        throw error;
      }
    }
  };
  try {
    for await (const chunk of source) {
      const buffer = chunk as Buffer;
      total += buffer.length;
      if (total > maxTotal) throw new LogStreamError('too-large', `log stream exceeds ${maxTotal} bytes`);
      await parseLines(buffer);
    }
  } catch (error) {
    if (error instanceof LogStreamError) throw error;
    if (storeFailure) throw storeFailure.error;
    throw new LogStreamError('corrupt', `log stream could not be read: ${(error as Error).message}`);
  }
  if (pending.length && !skippingLongLine) await parseLines(Buffer.from('\n'));
  return result;
}

function parseLine(bytes: Buffer): DeviceLogLine | 'empty' | undefined {
  const text = bytes.toString('utf8').trim();
  if (!text) return 'empty';
  try {
    return asDeviceLogLine(JSON.parse(text));
  } catch {
    return undefined;
  }
}
