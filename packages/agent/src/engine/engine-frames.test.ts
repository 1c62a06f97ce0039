import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EngineFrames, type EngineOutput } from './engine-frames.js';

function frame(stream: 1 | 2, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

function split(frames: Buffer[]): Record<EngineOutput, Buffer> {
  const out: Record<EngineOutput, Buffer[]> = { stdout: [], stderr: [] };
  const parser = new EngineFrames((name, data) => out[name].push(Buffer.from(data)));
  for (const f of frames) parser.write(f);
  return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr) };
}

describe('EngineFrames', () => {
  it('splits stdout and stderr frames', () => {
    const bytes = Buffer.concat([
      frame(1, Buffer.from('out\n')),
      frame(2, Buffer.from('err\n')),
      frame(1, Buffer.alloc(0)),
      frame(1, Buffer.from('more')),
    ]);
    assert.deepEqual(split([bytes]), { stdout: Buffer.from('out\nmore'), stderr: Buffer.from('err\n') });
  });

  it('gives the same payloads however the bytes are cut into chunks', () => {
    const frames = fc.array(fc.tuple(fc.constantFrom<1 | 2>(1, 2), fc.uint8Array({ maxLength: 40 })), {
      maxLength: 12,
    });
    fc.assert(
      fc.property(frames, fc.array(fc.nat(), { maxLength: 20 }), (list, cuts) => {
        const bytes = Buffer.concat(list.map(([s, p]) => frame(s, Buffer.from(p))));
        const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let from = 0;
        for (const cut of [...at, bytes.length]) {
          chunks.push(bytes.subarray(from, cut));
          from = cut;
        }
        const expected = (s: 1 | 2): Buffer => Buffer.concat(list.filter(([x]) => x === s).map(([, p]) => p));
        assert.deepEqual(split(chunks), { stdout: expected(1), stderr: expected(2) });
      }),
    );
  });
});
