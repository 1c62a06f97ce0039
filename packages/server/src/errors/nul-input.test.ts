import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { testDatabases } from '@flotilla/testkit';
import { fleetWithDevice, harness } from '../testing/harness.js';
import { startServer } from '../server.js';
import { containsNul } from './error-handler.js';

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
    const created = await db.create();
    const server = await startServer({ host: '127.0.0.1', port: 0, ...(created.url ? { databaseUrl: created.url } : {}) });
    try {
      const h = { call: async (method: string, url: string, key?: string, body?: unknown) => {
        const res = await fetch(`${server.url}${url}`, { method, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body) });
        const text = await res.text();
        return { statusCode: res.status, body: text, data: text ? JSON.parse(text) : undefined };
      } };
      const device = await fleetWithDevice(h as Parameters<typeof fleetWithDevice>[0], server.admin!.apiKey, 'nul');
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(`${server.url}/device/v2/${device.uuid}/log-stream`, { method: 'POST', headers: { authorization: `Bearer ${device.deviceKey}`, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end(gzipSync(`${JSON.stringify({ message: 'bin\u0000ary', timestamp: 1 })}\n`));
      });
      assert.equal(status, 201);
      const logs = await h.call('GET', `/api/v1/devices/${device.uuid}/logs`, server.admin!.apiKey);
      assert.deepEqual(logs.data.items.map((e: { message: string }) => e.message), ['binary']);
    } finally {
      await server.close();
      await created.drop();
    }
  });
}
