import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '@flotilla/testkit';
import { openStore } from './store.js';

test('stop holds round-trip through a reopened store and replace the whole map', async () => {
  const dir = await tempDir('flotilla-agent-store-');
  try {
    const first = openStore(dir.path);
    assert.deepEqual(first.getStopHolds(), {}, 'nothing held on a fresh device');
    first.setStopHolds({ '7/web': 'c1:h1', '7/db': 'c1:h2' });
    first.close();

    const second = openStore(dir.path);
    assert.deepEqual(second.getStopHolds(), { '7/web': 'c1:h1', '7/db': 'c1:h2' });
    second.setStopHolds({ '7/db': 'c1:h2' });
    assert.deepEqual(second.getStopHolds(), { '7/db': 'c1:h2' }, 'a released hold is gone, not merged back');
    second.setStopHolds({});
    second.close();

    const third = openStore(dir.path);
    assert.deepEqual(third.getStopHolds(), {});
    third.close();
  } finally {
    await dir.remove();
  }
});

test('a malformed stored hold map reads as nothing held rather than failing the agent', async () => {
  const dir = await tempDir('flotilla-agent-store-');
  try {
    openStore(dir.path).close();
    const cases: Array<{ stored: string; expect: Record<string, string> }> = [
      { stored: '[]', expect: {} },
      { stored: 'null', expect: {} },
      { stored: '"7/web"', expect: {} },
      { stored: '{"7/web":"c1:h1","7/db":3}', expect: { '7/web': 'c1:h1' } },
    ];
    for (const c of cases) {
      const db = new Database(join(dir.path, 'agent.sqlite'));
      db.prepare(
        "INSERT INTO kv (key, value) VALUES ('stopHolds', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      ).run(c.stored);
      db.close();
      const store = openStore(dir.path);
      assert.deepEqual(store.getStopHolds(), c.expect, c.stored);
      store.close();
    }
  } finally {
    await dir.remove();
  }
});
