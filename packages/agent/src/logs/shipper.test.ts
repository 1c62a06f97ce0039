import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { test } from 'node:test';
import { createGunzip } from 'node:zlib';
import type { DeviceLogLine } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import { MemoryLogQueue } from './log-queue.js';
import { LogShipper } from './shipper.js';

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  const stream = req.headers['content-encoding'] === 'gzip' ? req.pipe(createGunzip()) : req;
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

test('ships gzip NDJSON with the device key; a failed request is retried and nothing is lost', async () => {
  const received: DeviceLogLine[] = [];
  let requests = 0;
  const server = createServer((req, res) => {
    requests += 1;
    void readBody(req).then((body) => {
      assert.equal(req.url, `/device/v2/${'c'.repeat(32)}/log-stream`);
      assert.equal(req.headers.authorization, 'Bearer device-key-0123456789');
      assert.equal(req.headers['content-type'], 'application/x-ndjson');
      // Every second request fails after reading the body: the shipper must send those lines again.
      if (requests % 2 === 0) {
        res.writeHead(503).end();
        return;
      }
      for (const text of body.split('\n').filter(Boolean)) received.push(JSON.parse(text) as DeviceLogLine);
      res.writeHead(201).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const queue = new MemoryLogQueue();
  const shipper = new LogShipper({
    apiEndpoint: `http://127.0.0.1:${port}`,
    uuid: 'c'.repeat(32),
    deviceApiKey: 'device-key-0123456789',
    queue,
    batchLines: 7,
    lingerMs: 5,
    baseBackoffMs: 10,
  });
  try {
    for (let i = 0; i < 50; i += 1) {
      queue.push({ message: `m${i}`, timestamp: i, isStdErr: i % 3 === 0, serviceName: 'main' });
      shipper.wake();
    }
    await waitFor('all 50 lines received', () => received.length >= 50, { timeoutMs: 10_000 });
    assert.deepEqual(
      received.map((l) => l.message),
      Array.from({ length: 50 }, (_, i) => `m${i}`),
      'in order, none twice, none lost',
    );
    assert.equal(received[3]!.isStdErr, true);
    assert.ok(requests > 2, 'failures happened and were retried');
    assert.equal(queue.size(), 0);
  } finally {
    await shipper.stop();
    server.close();
  }
});

test('an unreachable control plane keeps lines queued until it comes back', async () => {
  const queue = new MemoryLogQueue();
  const server = createServer((req, res) => void readBody(req).then(() => res.writeHead(200).end()));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  const shipper = new LogShipper({
    apiEndpoint: `http://127.0.0.1:${port}`,
    uuid: 'd'.repeat(32),
    deviceApiKey: 'k'.repeat(20),
    queue,
    lingerMs: 1,
    baseBackoffMs: 20,
    maxBackoffMs: 50,
  });
  try {
    queue.push({ message: 'during outage', timestamp: 1 });
    shipper.wake();
    // Several failed attempts (backoff 20–50 ms) must leave the line queued: the quiet time is what is checked.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(queue.size(), 1, 'kept while the server is down');
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    await waitFor('line delivered after the outage', () => queue.size() === 0, { timeoutMs: 5_000 });
  } finally {
    await shipper.stop();
    server.close();
  }
});
