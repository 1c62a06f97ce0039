import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { DeviceLogLine } from '@flotilla/protocol';
import { LogStreamError, readLogStream } from './ndjson-reader.js';

/** Splits a body into small chunks so lines straddle chunk boundaries, as they do on a real connection. */
function chunked(body: Buffer, size = 7): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) parts.push(body.subarray(i, i + size));
  return Readable.from(parts);
}

test('gzip NDJSON split at arbitrary points yields every valid line, in order, in live batches', async () => {
  const lines = Array.from({ length: 30 }, (_, i) =>
    JSON.stringify({ message: `hello ${i}`, timestamp: 1000 + i, isStdErr: i % 2 === 1 }),
  );
  const got: DeviceLogLine[] = [];
  let batches = 0;
  const result = await readLogStream(chunked(gzipSync(`${lines.join('\n')}\n`), 5), {
    encoding: 'gzip',
    onLines: (batch) => {
      batches += 1;
      got.push(...batch);
    },
  });
  assert.equal(result.accepted, 30);
  assert.equal(result.rejected, 0);
  assert.deepEqual(
    got.map((l) => l.message),
    lines.map((_, i) => `hello ${i}`),
  );
  assert.ok(batches > 1, 'lines are handed on as they arrive, not only at the end');
});

test('bad lines are skipped and counted; a last line without newline still counts', async () => {
  const body = [
    '{"message":"ok","timestamp":1}',
    'not json',
    '{"message":5,"timestamp":1}',
    '',
    '{"timestamp":2}',
    '{"message":"tail","timestamp":3}',
  ].join('\n');
  const got: string[] = [];
  const result = await readLogStream(chunked(Buffer.from(body)), {
    encoding: undefined,
    onLines: (b) => void got.push(...b.map((l) => l.message)),
  });
  assert.deepEqual(got, ['ok', 'tail']);
  assert.equal(result.rejected, 3);
});

test('an over-long line is skipped without buffering it whole', async () => {
  const long = JSON.stringify({ message: 'x'.repeat(10_000), timestamp: 1 });
  const body = `${long}\n{"message":"after","timestamp":2}\n`;
  const got: string[] = [];
  const result = await readLogStream(chunked(Buffer.from(body), 100), {
    encoding: 'identity',
    maxLineBytes: 1_000,
    onLines: (b) => void got.push(...b.map((l) => l.message)),
  });
  assert.deepEqual(got, ['after']);
  assert.equal(result.rejected, 1);
});

test('a gzip bomb stops at the byte budget; corrupt gzip and unknown encodings are errors with a kind', async () => {
  const bomb = gzipSync(Buffer.alloc(5_000_000, 0x20));
  await assert.rejects(
    readLogStream(Readable.from([bomb]), { encoding: 'gzip', maxTotalBytes: 1_000_000, onLines: () => undefined }),
    (e: unknown) => e instanceof LogStreamError && e.kind === 'too-large',
  );
  await assert.rejects(
    readLogStream(Readable.from([Buffer.from('definitely not gzip')]), { encoding: 'gzip', onLines: () => undefined }),
    (e: unknown) => e instanceof LogStreamError && e.kind === 'corrupt',
  );
  await assert.rejects(
    readLogStream(Readable.from([Buffer.from('')]), { encoding: 'br', onLines: () => undefined }),
    (e: unknown) => e instanceof LogStreamError && e.kind === 'encoding',
  );
});

test('a bomb of 64 MiB of zeros or of newlines is refused within a CPU budget, not scanned over and over', async () => {
  // Measured on a loaded 2-core machine: zeros 1.6-3.9 s and newlines 9-12 s before the reader jumped from newline
  // to newline and dropped an over-long line's rest as it came; 0.05-0.1 s and about 1 s after.
  const slow: string[] = [];
  for (const [fill, budgetMs] of [
    [0x00, 750],
    [0x0a, 4_000],
  ] as const) {
    const chunk = Buffer.alloc(16 * 1024, fill);
    const source = Readable.from(
      (function* () {
        for (let i = 0; i < 80 * 64; i += 1) yield chunk;
      })(),
    );
    const started = Date.now();
    await assert.rejects(
      readLogStream(source, { encoding: 'identity', onLines: () => undefined }),
      (e: unknown) => e instanceof LogStreamError && e.kind === 'too-large',
    );
    const ms = Date.now() - started;
    if (ms >= budgetMs) slow.push(`64 MiB of 0x${fill.toString(16)} took ${ms} ms (budget ${budgetMs})`);
  }
  assert.deepEqual(slow, []);
});
