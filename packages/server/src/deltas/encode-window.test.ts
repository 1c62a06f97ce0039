import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DELTA_SOURCE_WINDOW_BYTES } from '@flotilla/protocol';
import { encodeWindow } from './compute-delta.js';

const MIB = 1024 * 1024;

test('the encoder window covers a source up to 256 MiB whole, never less than the device window', () => {
  assert.equal(encodeWindow(0), DELTA_SOURCE_WINDOW_BYTES);
  assert.equal(encodeWindow(100 * MIB), DELTA_SOURCE_WINDOW_BYTES);
  // Scenario 2's python layer: 134,333,440 bytes, just over the device's 128 MiB.
  assert.equal(encodeWindow(134_333_440), 130 * MIB);
  assert.ok(encodeWindow(134_333_440) > 134_333_440);
  assert.equal(encodeWindow(4 * 1024 * MIB), 256 * MIB);
});

test('xdelta3 decodes with a smaller window than the encoder used (the device decodes with its own)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-encode-window-'));
  try {
    const source = join(dir, 'source');
    const target = join(dir, 'target');
    const bytes = randomBytes(3 * MIB);
    await writeFile(source, bytes);
    // The target's second half copies the source's start: 1.5 MiB behind, out of a 1 MiB window's reach.
    await writeFile(target, Buffer.concat([randomBytes(100), bytes.subarray(1.5 * MIB), bytes.subarray(0, 1.5 * MIB)]));
    const encode = (window: number, out: string) =>
      execFileSync('xdelta3', ['-e', '-f', '-9', '-S', 'lzma', '-A', '-B', String(window), '-s', source, target, out]);
    encode(4 * MIB, join(dir, 'wide'));
    encode(MIB, join(dir, 'narrow'));
    const wide = (await stat(join(dir, 'wide'))).size;
    assert.ok(wide < 10_000, `the whole source in the window finds every copy (${wide} bytes)`);
    assert.ok((await stat(join(dir, 'narrow'))).size > 2 * MIB, 'a narrow encoder window misses them');
    const decoded = execFileSync('xdelta3', ['-d', '-c', '-B', String(MIB), '-s', source], {
      input: await readFile(join(dir, 'wide')),
      maxBuffer: 16 * MIB,
    });
    assert.ok(decoded.equals(await readFile(target)), 'decoded byte-identical with a 1 MiB window');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
