import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { EngineLogSplitter, compareStamps, parseEngineStamp, sinceParameter } from './engine-log-stream.js';

/** A multiplexed frame as the engine writes it: type byte, three zero bytes, big-endian length, payload. */
function frame(type: 0 | 1 | 2, payload: string | Buffer): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

function split(chunks: Buffer[], tty = false, maxLineBytes?: number): string[] {
  const out: string[] = [];
  const splitter = new EngineLogSplitter(
    tty,
    (text, isStdErr) => out.push(`${isStdErr ? 'err' : 'out'}:${text}`),
    maxLineBytes,
  );
  for (const chunk of chunks) splitter.write(chunk);
  splitter.end();
  return out;
}

/** Cuts `whole` at the given offsets. */
function cut(whole: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((n) => n % (whole.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    out.push(whole.subarray(from, point));
    from = point;
  }
  out.push(whole.subarray(from));
  return out;
}

const cases: { name: string; chunks: Buffer[]; tty?: boolean; want: string[] }[] = [
  { name: 'one frame, one line', chunks: [frame(1, 'hello\n')], want: ['out:hello'] },
  {
    name: 'stderr frames are marked',
    chunks: [frame(2, 'oops\n'), frame(1, 'fine\n')],
    want: ['err:oops', 'out:fine'],
  },
  { name: 'several lines in one frame', chunks: [frame(1, 'a\nb\nc\n')], want: ['out:a', 'out:b', 'out:c'] },
  { name: 'a line across frames', chunks: [frame(1, 'hel'), frame(1, 'lo\n')], want: ['out:hello'] },
  {
    name: 'stdout and stderr partial lines do not mix',
    chunks: [frame(1, 'out-'), frame(2, 'err-'), frame(1, 'line\n'), frame(2, 'line\n')],
    want: ['out:out-line', 'err:err-line'],
  },
  {
    name: 'a header cut between chunks',
    chunks: [frame(1, 'x\n').subarray(0, 3), frame(1, 'x\n').subarray(3)],
    want: ['out:x'],
  },
  { name: 'CRLF loses its CR', chunks: [frame(1, 'dos\r\n')], want: ['out:dos'] },
  { name: 'an empty line stays a line', chunks: [frame(1, '\n')], want: ['out:'] },
  { name: 'an unfinished last line is emitted at the end', chunks: [frame(1, 'last')], want: ['out:last'] },
  { name: 'stdin frames count as output', chunks: [frame(0, 'in\n')], want: ['out:in'] },
  { name: 'an empty frame is skipped', chunks: [frame(1, ''), frame(1, 'a\n')], want: ['out:a'] },
  {
    name: 'tty: raw output, no frames',
    chunks: [Buffer.from('one\r\ntw'), Buffer.from('o\n')],
    tty: true,
    want: ['out:one', 'out:two'],
  },
  {
    name: 'a UTF-8 character cut between frames',
    chunks: [frame(1, Buffer.from('é\n').subarray(0, 1)), frame(1, Buffer.from('é\n').subarray(1))],
    want: ['out:é'],
  },
];

for (const c of cases) {
  test(`splitter: ${c.name}`, () => {
    assert.deepEqual(split(c.chunks, c.tty), c.want);
  });
}

test('splitter: a line longer than the limit comes out in pieces, so memory stays bounded', () => {
  const long = 'x'.repeat(25);
  const chunks = [...long].map((ch) => frame(1, ch));
  const lines = split([...chunks, frame(1, '\n')], false, 10);
  assert.deepEqual(
    lines.map((l) => l.length - 4),
    [10, 10, 5],
  );
});

test('splitter: however the engine cuts its stream, the same lines come out', () => {
  const line = fc.string({ unit: fc.constantFrom('a', 'é', '€', '😀', ' ', '\r'), maxLength: 12 });
  const entry = fc.record({ stream: fc.constantFrom<1 | 2>(1, 2), text: line, pieces: fc.integer({ min: 1, max: 3 }) });
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (entries, cuts) => {
      // Each line goes out as 1-3 frames of its stream, lines of the two streams interleaved.
      const frames: Buffer[] = [];
      for (const { stream, text, pieces } of entries) {
        const bytes = Buffer.from(`${text}\n`);
        const step = Math.ceil(bytes.length / pieces);
        for (let at = 0; at < bytes.length; at += step) frames.push(frame(stream, bytes.subarray(at, at + step)));
      }
      const want = entries.map(
        ({ stream, text }) => `${stream === 2 ? 'err' : 'out'}:${text.endsWith('\r') ? text.slice(0, -1) : text}`,
      );
      assert.deepEqual(split(cut(Buffer.concat(frames), cuts)), want);
    }),
    { numRuns: 300 },
  );
});

test('stamps: nanoseconds, fewer digits, none, and what is not a stamp', () => {
  const base = Date.parse('2026-11-23T08:40:01Z');
  assert.deepEqual(parseEngineStamp('2026-11-23T08:40:01.123456789Z'), { secondMs: base, nanos: 123_456_789 });
  assert.deepEqual(parseEngineStamp('2026-11-23T08:40:01.5Z'), { secondMs: base, nanos: 500_000_000 });
  assert.deepEqual(parseEngineStamp('2026-11-23T08:40:01Z'), { secondMs: base, nanos: 0 });
  assert.deepEqual(parseEngineStamp('2026-11-23T08:40:02.000000001Z'), { secondMs: base + 1000, nanos: 1 });
  for (const bad of [
    '',
    'hello',
    '2026-11-23T08:40:01',
    '2026-11-23T08:40:01.Z',
    '2026-11-23T08:40:01.1234567890Z',
    '2026-11-23T08:40:01.12a4Z',
    '2026-11-23 08:40:01Z',
    '2026-11-23T08:40:01+01:00',
  ]) {
    assert.equal(parseEngineStamp(bad), undefined, bad);
  }
  // The cached second must not let a damaged stamp of the same second through.
  parseEngineStamp('2026-11-23T08:40:01.1Z');
  assert.equal(parseEngineStamp('2026-11-23T08:40:01,1Z'), undefined);
  assert.deepEqual(parseEngineStamp('2026-11-23T08:40:01.25Z extra', 23), { secondMs: base, nanos: 250_000_000 });
});

test('stamps: order and the engine since parameter', () => {
  const a = parseEngineStamp('2026-11-23T08:40:01.999999999Z')!;
  const b = parseEngineStamp('2026-11-23T08:40:02Z')!;
  const c = parseEngineStamp('2026-11-23T08:40:02.000000001Z')!;
  assert.ok(compareStamps(a, b) < 0 && compareStamps(b, c) < 0 && compareStamps(c, a) > 0);
  assert.equal(compareStamps(b, parseEngineStamp('2026-11-23T08:40:02.0Z')!), 0);
  assert.equal(sinceParameter(a), `${Date.parse('2026-11-23T08:40:01Z') / 1000}.999999999`);
});
