import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ensureBusyboxImage, ensureDebianImage } from './base-images.js';
import { run } from './exec.js';

async function buildAndRun(from: string, script: string): Promise<string> {
  const ctx = await mkdtemp(join(tmpdir(), 'flotilla-ctx-'));
  const tag = `flotilla-test/probe:${Date.now()}`;
  try {
    await writeFile(join(ctx, 'Dockerfile'), `FROM ${from}\nRUN ${script} > /probe.txt\nCMD ["cat", "/probe.txt"]\n`);
    await run('docker', ['build', '-q', '-t', tag, ctx]);
    const { stdout } = await run('docker', ['run', '--rm', tag]);
    return stdout.trim();
  } finally {
    await run('docker', ['rmi', '-f', tag]).catch(() => undefined);
    await rm(ctx, { recursive: true, force: true });
  }
}

test('a Dockerfile builds FROM the imported busybox base, with no registry', async () => {
  const image = await ensureBusyboxImage();
  assert.equal(await buildAndRun(image, 'echo built-on-busybox'), 'built-on-busybox');
});

test('a Dockerfile builds FROM the debootstrapped Debian base', { timeout: 20 * 60_000 }, async () => {
  const image = await ensureDebianImage();
  assert.match(await buildAndRun(image, 'cat /etc/debian_version'), /^12\./);
});
