import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { constants, createGzip } from 'node:zlib';
import type { LogEntry } from '@flotilla/protocol';
import { tempDir, testDatabases, waitFor } from '@flotilla/testkit';
import { liveServerWithDevice } from '../testing/live-server.js';

/** Far below the defaults, so a stream silent for a few seconds outlives both timeouts several times over. */
const LIMITS = { headerTimeoutMs: 1_000, requestTimeoutMs: 300, idleTimeoutMs: 600 };
const SILENCE_MS = 2_500;

const [sqlite] = testDatabases();
const cases = [
  ...testDatabases().map((db) => ({ label: `${db.label}, http`, db, tls: false })),
  // As a balenaOS device holds it: over TLS (the socket held open is then a TLS socket).
  ...(sqlite ? [{ label: `${sqlite.label}, https`, db: sqlite, tls: true }] : []),
];

for (const { label, db, tls } of cases) {
  test(`[${label}] a silent log stream stays open past the request and idle timeouts, then takes a line`, async () => {
    const dir = await tempDir('flotilla-log-idle-');
    const live = await liveServerWithDevice(db, {
      http: LIMITS,
      ...(tls ? { tls: 'self-signed' as const, dataDir: dir.path, plainHttp: { host: '127.0.0.1', port: 0 } } : {}),
    });
    const { server, uuid, deviceKey } = live;
    const { api } = live;
    const request = tls ? httpsRequest : httpRequest;
    try {
      // As the balena Supervisor sends it: one chunked POST, gzip flushed after each line, open while it has lines.
      const gzip = createGzip();
      const req = request(`${server.url}/device/v2/${uuid}/log-stream`, {
        method: 'POST',
        ...(tls ? { ca: server.rootCa } : {}),
        headers: {
          authorization: `Bearer ${deviceKey}`,
          'content-type': 'application/x-ndjson',
          'content-encoding': 'gzip',
        },
      });
      let closed = false;
      const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
        req.on('response', (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
      });
      req.on('close', () => {
        closed = true;
      });
      req.flushHeaders();
      gzip.pipe(req);
      const line = (message: string) => {
        gzip.write(`${JSON.stringify({ message, timestamp: Date.now(), isSystem: true })}\n`);
        gzip.flush(constants.Z_SYNC_FLUSH);
      };
      const stored = async () =>
        (await api('GET', `/api/v1/devices/${uuid}/logs`)).data.items.map((e: LogEntry) => e.message);

      line('before the silence');
      await waitFor('the first line to be stored', async () => (await stored()).length === 1);
      const silentFrom = Date.now();
      await sleep(SILENCE_MS);
      assert.equal(closed, false, 'the server kept the silent stream open');
      line('after the silence');
      await waitFor('the second line to be stored', async () => (await stored()).length === 2);
      gzip.end();
      const { status, body } = await answer;
      assert.equal(status, 201, body);
      assert.equal(JSON.parse(body).accepted, 2);
      assert.deepEqual(await stored(), ['before the silence', 'after the silence']);
      assert.ok(Date.now() - silentFrom >= SILENCE_MS);
    } finally {
      await live.close();
      await dir.remove();
    }
  });
}
