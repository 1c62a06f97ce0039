import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import pino from 'pino';
import { OsDelta } from './os-delta.js';

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
