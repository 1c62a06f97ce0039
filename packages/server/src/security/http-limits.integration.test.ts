import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import WebSocket from 'ws';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { liveServerWithDevice } from '../testing/index.js';

const LIMITS = { headerTimeoutMs: 1_500, requestTimeoutMs: 1_500, idleTimeoutMs: 3_000, maxConnections: 24 };

/** Longest any attack is kept up: a server without limits never cuts it, and the test must still end. */
const GIVE_UP_MS = 15_000;

/** A raw TCP client: what it received, and when (ms after `start`) the server closed it (Infinity: never). */
function rawClient(url: string) {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  const start = Date.now();
  let received = '';
  let closedAfter: number | undefined;
  socket.on('data', (d: Buffer) => {
    received += d.toString();
  });
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => {
    socket.on('close', () => {
      closedAfter = Date.now() - start;
      resolve(closedAfter);
    });
    setTimeout(() => resolve(Number.POSITIVE_INFINITY), GIVE_UP_MS).unref();
  });
  const connected = new Promise<void>((resolve) => socket.on('connect', () => resolve()));
  return {
    socket,
    connected,
    closed,
    received: () => received,
    isClosed: () => closedAfter !== undefined,
    givenUp: () => Date.now() - start > GIVE_UP_MS,
    write: (text: string) => (socket.destroyed ? false : socket.write(text)),
  };
}

for (const testDb of testDatabases()) {
  describe(`HTTP timeouts and connection cap (${testDb.label})`, () => {
    test('slow headers and bodies are cut, connections beyond the cap refused, long streams kept', async () => {
      const live = await liveServerWithDevice(testDb, { http: LIMITS });
      try {
        const url = live.server.url;

        // Slowloris: request line, then one header byte every 400 ms, never finishing the headers.
        const slowloris = Array.from({ length: 4 }, () => rawClient(url));
        const drips = slowloris.map(async (c) => {
          await c.connected;
          c.write('GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ');
          while (!c.isClosed() && !c.givenUp()) {
            c.write('a');
            await sleep(400);
          }
        });
        const cutAfter = await Promise.all(slowloris.map((c) => c.closed));
        await Promise.all(drips);
        for (const c of slowloris) c.socket.destroy();
        const headerCut = cutAfter.filter((ms) => ms < LIMITS.headerTimeoutMs + 2_000).length;

        // Slow body: headers at once, then a byte every 300 ms of a declared 1,000-byte JSON body.
        const slowBodies = Array.from({ length: 4 }, () => rawClient(url));
        const bodyDrips = slowBodies.map(async (c) => {
          await c.connected;
          c.write(
            `POST /api/v1/fleets HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${live.apiKey}\r\n` +
              'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n ',
          );
          while (!c.isClosed() && !c.givenUp()) {
            c.write(' ');
            await sleep(300);
          }
        });
        const bodyCutAfter = await Promise.all(slowBodies.map((c) => c.closed));
        await Promise.all(bodyDrips);
        for (const c of slowBodies) c.socket.destroy();
        const bodyCut = slowBodies.filter(
          (c, i) =>
            (bodyCutAfter[i] ?? Infinity) < LIMITS.requestTimeoutMs + 2_000 && /^HTTP\/1\.1 408/.test(c.received()),
        ).length;

        // A device log stream that keeps sending, for well past the request timeout, stays open and is stored.
        const { hostname, port } = new URL(url);
        const stream = connect(Number(port), hostname);
        let answer = '';
        stream.on('data', (d: Buffer) => {
          answer += d.toString();
        });
        await new Promise<void>((resolve) => stream.on('connect', () => resolve()));
        stream.write(
          `POST /device/v2/${live.uuid}/log-stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${live.deviceKey}\r\n` +
            'Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n',
        );
        const streamStart = Date.now();
        let sent = 0;
        while (Date.now() - streamStart < LIMITS.requestTimeoutMs * 3) {
          const line = `${JSON.stringify({ message: `still here ${sent}`, timestamp: Date.now() })}\n`;
          stream.write(`${Buffer.byteLength(line).toString(16)}\r\n${line}\r\n`);
          sent += 1;
          await sleep(500);
        }
        assert.equal(stream.destroyed, false, 'the log stream is still open');
        stream.write('0\r\n\r\n');
        const streamMs = Date.now() - streamStart;
        await new Promise<void>((resolve) => {
          const check = () => (answer.includes('\r\n\r\n{') ? resolve() : setTimeout(check, 20));
          check();
        });
        stream.destroy();
        assert.match(answer, /^HTTP\/1\.1 201/);
        assert.equal(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).accepted, sent);

        // A registry upload over a slow link (a chunk every 500 ms) outlives the request timeout too.
        const registryAuth = `Basic ${Buffer.from(`admin:${live.apiKey}`).toString('base64')}`;
        const started = await fetch(`${url}/v2/${live.slug}/main/blobs/uploads/`, {
          method: 'POST',
          headers: { authorization: registryAuth },
        });
        assert.equal(started.status, 202);
        const chunks = Math.ceil((LIMITS.requestTimeoutMs * 3) / 500);
        const upload = rawClient(url);
        await upload.connected;
        upload.write(
          `PATCH ${started.headers.get('location')} HTTP/1.1\r\nHost: x\r\nAuthorization: ${registryAuth}\r\n` +
            `Content-Type: application/octet-stream\r\nContent-Length: ${chunks * 1024}\r\n\r\n`,
        );
        const uploadStart = Date.now();
        for (let i = 0; i < chunks && !upload.isClosed(); i += 1) {
          upload.write('u'.repeat(1024));
          await sleep(500);
        }
        const uploadMs = Date.now() - uploadStart;
        await waitFor('the upload to be answered', () => upload.received().includes('\r\n\r\n') || upload.isClosed());
        upload.socket.destroy();
        assert.match(upload.received(), /^HTTP\/1\.1 202/, 'the slow upload is accepted');
        assert.match(upload.received(), new RegExp(`range: 0-${chunks * 1024 - 1}`, 'i'));

        // A device's WebSocket stays connected while silent for longer than the idle timeout.
        const ws = new WebSocket(`${url.replace('http', 'ws')}/device/v1/${live.uuid}/connect`, {
          headers: { authorization: `Bearer ${live.deviceKey}` },
        });
        await new Promise<void>((resolve, reject) => {
          ws.on('open', () => resolve());
          ws.on('error', reject);
        });
        await sleep(LIMITS.idleTimeoutMs + 1_000);
        const wsOpen = ws.readyState === WebSocket.OPEN;
        ws.close();
        assert.ok(wsOpen, 'the device WebSocket outlives the idle timeout');

        // Connection cap: open twice the cap; those beyond it are closed at once, without an answer.
        const crowd = Array.from({ length: LIMITS.maxConnections * 2 }, () => rawClient(url));
        await Promise.all(crowd.map((c) => c.connected));
        await sleep(300);
        for (const c of crowd) c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        await sleep(500);
        const served = crowd.filter((c) => c.received().startsWith('HTTP/1.1 200')).length;
        const refused = crowd.filter((c) => c.isClosed() && c.received() === '').length;
        for (const c of crowd) c.socket.destroy();
        await sleep(200);
        // Once the crowd is gone the server answers again.
        assert.equal((await fetch(`${url}/healthz`)).status, 200);

        console.log(
          `security: http limits (${testDb.label}): slowloris ${slowloris.length} attempts, ${headerCut} cut after ` +
            `${Math.max(...cutAfter)} ms at most; slow bodies ${slowBodies.length} attempts, ${bodyCut} answered 408 ` +
            `and closed; ${crowd.length} connections against a cap of ${LIMITS.maxConnections}: ${served} served, ` +
            `${refused} refused; a log stream of ${sent} lines kept open ${streamMs} ms (request timeout ` +
            `${LIMITS.requestTimeoutMs} ms); a registry upload trickled over ${uploadMs} ms accepted; device WebSocket silent past the idle timeout stayed open`,
        );
        assert.equal(headerCut, slowloris.length, `slowloris cut after ${cutAfter.join(', ')} ms`);
        assert.equal(bodyCut, slowBodies.length, `slow bodies cut after ${bodyCutAfter.join(', ')} ms`);
        assert.ok(
          slowBodies.every((c) => c.received().includes('REQUEST_TIMEOUT')),
          slowBodies[0]?.received(),
        );
        assert.ok(served <= LIMITS.maxConnections, `${served} served`);
        assert.ok(refused >= LIMITS.maxConnections, `${refused} refused`);
        assert.equal(served + refused, crowd.length);
      } finally {
        await live.close();
      }
    });
  });
}
