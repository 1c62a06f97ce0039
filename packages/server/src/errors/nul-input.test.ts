import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { harness } from '../testing/harness.js';
import { liveServerWithDevice, postDeviceLogs } from '../testing/live-server.js';
import { containsNul } from '../http/parse.js';

test('containsNul walks parsed values only', () => {
  assert.equal(containsNul({ a: ['x', { b: 'y\u0000' }] }), true);
  assert.equal(containsNul({ 'k\u0000': 1 }), true);
  assert.equal(containsNul({ a: 'fine', n: 1, z: null }), false);
  assert.equal(containsNul(Buffer.from('a\u0000b')), false, 'buffers are not parsed input');
});

for (const db of testDatabases()) {
  // Found by the fuzz test: PostgreSQL cannot store NUL, SQLite can; both must answer 400 alike, never 500.
  test(`[${db.label}] a NUL character in a path, query or body is a 400, on every dialect`, async () => {
    const h = await harness(db);
    try {
      for (const [method, url, body] of [
        ['DELETE', '/api/v1/organizations/%00/members/0', undefined],
        ['GET', '/api/v1/fleets/a%00b', undefined],
        ['GET', '/api/v1/devices?fleet=x%00', undefined],
        ['POST', '/api/v1/fleets', { name: 'evil\u0000', slug: 'evil' }],
      ] as const) {
        const res = await h.call(method, url, h.adminKey, body);
        assert.equal(res.statusCode, 400, `${method} ${url} → ${res.body}`);
        assert.equal(res.data.error.code, 'VALIDATION_FAILED');
      }
    } finally {
      await h.close();
    }
  });

  test(`[${db.label}] log lines holding NUL bytes are stored without them`, async () => {
    const live = await liveServerWithDevice(db);
    try {
      assert.equal(
        await postDeviceLogs(live.server.url, live.uuid, live.deviceKey, [{ message: 'bin\u0000ary', timestamp: 1 }]),
        201,
      );
      const logs = await live.api('GET', `/api/v1/devices/${live.uuid}/logs`);
      assert.deepEqual(
        logs.data.items.map((e: { message: string }) => e.message),
        ['binary'],
      );
    } finally {
      await live.close();
    }
  });
}
