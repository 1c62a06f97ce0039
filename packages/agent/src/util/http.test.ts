import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { httpExchange } from './http.js';

describe('httpExchange', () => {
  let server: Server;
  let base: URL;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/echo') {
          res.writeHead(201, { etag: '"abc"', 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              method: req.method,
              auth: req.headers.authorization,
              length: req.headers['content-length'],
              body: Buffer.concat(chunks).toString(),
            }),
          );
        } else if (req.url === '/big') {
          res.end(Buffer.alloc(64 * 1024, 'x'));
        } else if (req.url === '/silent') {
          res.flushHeaders(); // headers, then nothing: the idle timeout must end it
        } else {
          res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  const init = { idleTimeoutMs: 5_000, maxBodyBytes: 1024 * 1024 };

  test('sends method, headers and body with its length, and buffers status, headers and body of the answer', async () => {
    const answer = await httpExchange(new URL('/echo', base), {
      ...init,
      method: 'PATCH',
      headers: { authorization: 'Bearer k' },
      body: 'héllo',
    });
    assert.equal(answer.status, 201);
    assert.equal(answer.headers.etag, '"abc"');
    assert.deepEqual(JSON.parse(answer.body.toString()), {
      method: 'PATCH',
      auth: 'Bearer k',
      length: '6',
      body: 'héllo',
    });
  });

  test('an answer over maxBodyBytes fails instead of growing in memory', async () => {
    await assert.rejects(
      httpExchange(new URL('/big', base), { ...init, method: 'GET', maxBodyBytes: 1000 }),
      /larger than 1000 bytes/,
    );
  });

  test('a silent server fails the request after the idle timeout', async () => {
    await assert.rejects(
      httpExchange(new URL('/silent', base), { ...init, method: 'GET', idleTimeoutMs: 200 }),
      /no answer within 200 ms/,
    );
  });

  test('an aborted signal ends the request with an AbortError', async () => {
    const abort = new AbortController();
    const pending = httpExchange(new URL('/silent', base), { ...init, method: 'GET', signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    await assert.rejects(pending, { name: 'AbortError' });
  });

  test('an unreachable endpoint rejects (the caller maps it to NETWORK_ERROR)', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(httpExchange(new URL(`http://127.0.0.1:${port}/`), { ...init, method: 'GET' }), {
      code: 'ECONNREFUSED',
    });
  });
});
