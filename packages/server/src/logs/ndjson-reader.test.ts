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
