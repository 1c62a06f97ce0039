import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { DiskHealth } from './disk-health.js';
import { isNoSpaceError } from './no-space.js';

test('no-space errors: file system, quota, SQLite and PostgreSQL codes, also when wrapped', () => {
  for (const code of ['ENOSPC', 'EDQUOT', 'SQLITE_FULL', '53100'])
    assert.ok(isNoSpaceError(Object.assign(new Error('x'), { code })), code);
  assert.ok(isNoSpaceError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ENOSPC' }) })));
  for (const other of [new Error('x'), Object.assign(new Error('x'), { code: 'EACCES' }), null, 'ENOSPC'])
    assert.equal(isNoSpaceError(other), false);
});

test('health: below the threshold is unhealthy with a reason; a failed write is remembered until it expires', async () => {
  const dir = await tempDir();
  try {
    const low = new DiskHealth(dir.path, Number.MAX_SAFE_INTEGER);
    const status = await low.status();
    assert.equal(status.ok, false);
    assert.match(status.reason ?? '', /below the .* MB threshold/);
    assert.equal(await low.low(), true);

    let now = 1_000_000;
    const roomy = new DiskHealth(dir.path, 0, () => now);
    assert.equal((await roomy.status()).ok, true);
    const error = Object.assign(new Error('no space'), { code: 'ENOSPC' });
    await roomy.noteNoSpace(error);
    assert.match((await roomy.status()).reason ?? '', /a write failed for lack of space/);
    now += 5 * 60 * 1000 + 1;
    assert.equal((await roomy.status()).ok, true, 'a failure nobody repeated expires');
    await roomy.noteNoSpace(error);
    assert.equal((await roomy.status()).ok, true, 'the same error reported again by another layer counts once');
  } finally {
    await dir.remove();
  }
});

test('reclaim runs the reclaimers only until there is room again', async () => {
  let full = true;
  const health = new DiskHealth(undefined, 1);
  // Without a data folder nothing is ever low, so nothing is reclaimed.
  health.addReclaimer(async () => {
    full = false;
    return { removed: 1, bytes: 1 };
  });
  assert.deepEqual(await health.reclaim(), { removed: 0, bytes: 0 });
  assert.equal(full, true);
});
