import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { osImagePair, tempDir } from '@flotilla/testkit';
import pino from 'pino';
import { OsDelta, decode } from './os-delta.js';

const run = promisify(execFile);

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return Buffer.concat(out);
}

test('decoding from byte n gives the image from n (a resumed slot write), and a damaged delta is DELTA_INVALID', async () => {
  const dir = await tempDir('flotilla-os-decode-');
  try {
    const pair = await osImagePair(dir.path, { mib: 8, files: 12, fileBytes: 150_000 });
    const delta = join(dir.path, 'delta');
    await run('xdelta3', ['-e', '-f', '-9', '-S', 'lzma', '-A', '-s', pair.v1.path, pair.v2.path, delta]);
    const signal = AbortSignal.timeout(60_000);
    assert.ok((await collect(decode(pair.v1.path, delta, 0, signal))).equals(pair.v2.bytes));
    const from = 3 * 1024 * 1024 + 12345;
    assert.ok((await collect(decode(pair.v1.path, delta, from, signal))).equals(pair.v2.bytes.subarray(from)));
    // Another source than the one encoded against: xdelta3's window checksums refuse it.
    const other = join(dir.path, 'other');
    await writeFile(other, Buffer.from(pair.v1.bytes).fill(7, 1 << 20, 7 << 20));
    await assert.rejects(collect(decode(other, delta, 0, signal)), { code: 'DELTA_INVALID' });
  } finally {
    await dir.remove();
  }
});

const target = { version: '2.0.0', url: 'http://127.0.0.1:9/x', sha256: 'b'.repeat(64), size: 1 << 20 };
const endpoint = { apiEndpoint: 'http://127.0.0.1:9', uuid: 'a'.repeat(32), deviceApiKey: 'k' };

test('SUPERVISOR_DELTA=0, or nothing known of the booted OS: no delta is asked for (the full image is)', async () => {
  const dir = await tempDir('flotilla-os-delta-');
  try {
    const log = pino({ level: 'silent' });
    const off = new OsDelta({ endpoint, dataDir: dir.path, log, enabled: () => false });
    const signal = AbortSignal.timeout(10_000);
    assert.equal(await off.open(target, { device: '/dev/null', version: '1.0.0' }, 0, signal), undefined);
    const on = new OsDelta({ endpoint, dataDir: dir.path, log, enabled: () => true });
    assert.equal(await on.open(target, { device: '/dev/null' }, 0, signal), undefined);
    // With a version to ask from, it does ask (and the refused connection is the caller's cue for the full image).
    await assert.rejects(on.open(target, { device: '/dev/null', version: '1.0.0' }, 0, signal));
  } finally {
    await dir.remove();
  }
});
