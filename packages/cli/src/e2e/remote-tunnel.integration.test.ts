/**
 * Issue 12 acceptance, tunnels and public URLs: `flotilla tunnel` (the real binary, a child process) → the real
 * server → the real agent → a service container deployed with `flotilla deploy`, or a port on the device's host
 * (this machine: the agent reaches it at 127.0.0.1). Downloads keep their digest, a public URL carries HTTP and
 * WebSocket and turning it off closes what is open, and a reader that stops reading holds the source back and
 * can then read on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PublicUrl, RemoteSession } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import { WebSocket, WebSocketServer } from 'ws';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';
import {
  type RemoteDevice,
  openStreams,
  sha256,
  startRemoteDevice,
  startTunnel,
  stopTunnel,
  within,
} from './remote-device.js';

let device: RemoteDevice;

before(async () => {
  device = await startRemoteDevice('e2etun', { deploy: true });
});

after(async () => {
  await device?.close();
});

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

test('a tunnel to a service port carries HTTP downloads whose digests match, one and several at once', async () => {
  const tunnel = await startTunnel(device.admin, device.uuid, '0:web:80');
  try {
    assert.match(tunnel.cli.stdout(), new RegExp(`^tunnel 127\\.0\\.0\\.1:${tunnel.port} → [\\w-]+:web:80\\n$`));
    const download = async () => {
      const response = await fetch(`http://127.0.0.1:${tunnel.port}/blob.bin`);
      assert.equal(response.status, 200);
      return sha256(Buffer.from(await response.arrayBuffer()));
    };
    assert.equal(await download(), device.blob.sha256);
    const digests = await Promise.all(Array.from({ length: 5 }, download));
    assert.deepEqual(digests, Array(5).fill(device.blob.sha256));
    await stopTunnel(tunnel);
  } finally {
    tunnel.cli.child.kill('SIGKILL');
  }
});

test('a public URL serves a page and a WebSocket of the device, and turning it off closes them', async () => {
  const page = createHttpServer((request, response) =>
    response.end(`page ${request.url} for ${request.headers['x-forwarded-for'] ? 'a visitor' : 'nobody'}`),
  );
  const echo = new WebSocketServer({ server: page });
  echo.on('connection', (socket) => socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })));
  const port = await listen(page);
  let visitor: WebSocket | undefined;
  try {
    const enabled = await flotillaJson<PublicUrl>(device.admin, [
      'device',
      'public-url',
      'enable',
      device.uuid,
      '--port',
      String(port),
    ]);
    assert.equal(enabled.url, `${device.server.url}/public/${device.uuid}/`);
    const response = await fetch(`${enabled.url}hello?x=1`);
    assert.equal(response.status, 200);
    assert.equal(await response.text(), 'page /hello?x=1 for a visitor');

    visitor = new WebSocket(`${enabled.url?.replace(/^http/, 'ws')}echo`);
    await once(visitor, 'open');
    const reply = once(visitor, 'message');
    visitor.send('ping through the public URL');
    assert.equal(String((await reply)[0]), 'ping through the public URL');

    const closed = once(visitor, 'close');
    const disabled = await flotilla(device.admin, ['device', 'public-url', 'disable', device.uuid]);
    assert.equal(disabled.code, 0, disabled.stderr);
    await within(closed, 3_000, 'the open WebSocket closing after the URL was turned off');
    assert.equal((await fetch(`${enabled.url}hello`)).status, 404);

    const sessions = await flotillaJson<RemoteSession[]>(device.admin, ['sessions', '--device', device.uuid]);
    const visits = sessions.filter((s) => s.kind === 'public-url');
    assert.equal(visits.length, 2, 'the page and the WebSocket');
    assert.ok(visits.every((s) => s.user === null && s.endedAt !== null));
    assert.ok(
      visits.some((s) => s.endReason === 'disabled'),
      'the open WebSocket was ended by the switch',
    );
  } finally {
    visitor?.terminate();
    echo.close();
    page.closeAllConnections();
    page.close();
  }
});

/**
 * The most a chain of `hops` loopback TCP connections can hold in the kernel: each connection's send buffer and
 * receive buffer at the sizes autotuning may grow them to (tcp_wmem, tcp_rmem maxima).
 */
async function kernelBufferBound(hops: number): Promise<number> {
  const max = async (name: string) => Number((await readFile(`/proc/sys/net/ipv4/${name}`, 'utf8')).split(/\s+/)[2]);
  return hops * ((await max('tcp_rmem')) + (await max('tcp_wmem')));
}

test('a reader that stops reading holds the device’s source back; the stream then goes on', async (t) => {
  // The source → agent → server → CLI → reader: four TCP connections whose kernel buffers are not ours to bound,
  // plus what the agent, the server and the CLI may each hold (about 1 MiB each, Node's stream buffers included).
  const MiB = 1024 * 1024;
  const bound = (await kernelBufferBound(4)) + 8 * MiB;
  const total = 512 * MiB;
  assert.ok(total > 2 * bound, `this kernel's buffers (${bound / MiB} MiB) are too large for the test to tell`);
  const chunk = randomBytes(MiB);
  let written = 0;
  const source = createServer((socket) => {
    socket.on('error', () => undefined);
    const pump = () => {
      while (written < total && !socket.destroyed) {
        written += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  const port = await listen(source);
  const tunnel = await startTunnel(device.admin, device.uuid, `0:${port}`);
  let client: Socket | undefined;
  try {
    client = connect(tunnel.port, '127.0.0.1');
    await once(client, 'connect');
    // Nothing reads `client` (no 'data' listener): once its small buffer is full, Node stops reading the socket.
    await waitFor('the source to start writing', () => written > 0, { timeoutMs: 10_000 });
    await sleep(3_000);
    const stalled = written;
    await sleep(1_000);
    assert.equal(written, stalled, 'the source stopped growing while nobody read');
    assert.ok(stalled <= bound, `the source wrote ${stalled / MiB} MiB to a reader that read none`);
    t.diagnostic(`the source wrote ${stalled / MiB} MiB before it stalled (bound ${bound / MiB} MiB)`);

    // Reading again: the bytes come in order and unchanged (the source repeats `chunk`), and the source goes on.
    const wanted = stalled + 64 * MiB;
    let received = 0;
    let intact = true;
    const resumed = Date.now();
    const reader = client;
    const done = new Promise<void>((resolve) => {
      reader.on('data', (data: Buffer) => {
        for (let at = 0; at < data.length && intact; ) {
          const offset = (received + at) % chunk.length;
          const length = Math.min(data.length - at, chunk.length - offset);
          intact = data.subarray(at, at + length).equals(chunk.subarray(offset, offset + length));
          at += length;
        }
        received += data.length;
        if (received >= wanted || !intact) resolve();
      });
      reader.once('close', () => resolve());
    });
    await within(done, 30_000, () => `reading ${wanted / MiB} MiB (${(received / MiB).toFixed(0)} so far)`);
    assert.ok(intact, `the bytes after ${received} differ from what the source wrote`);
    assert.ok(received >= wanted, `only ${received / MiB} of ${wanted / MiB} MiB arrived in 30 s`);
    t.diagnostic(`${(received / MiB).toFixed(0)} MiB read ${Date.now() - resumed} ms after reading resumed`);
    await stopTunnel(tunnel);
  } finally {
    client?.destroy();
    tunnel.cli.child.kill('SIGKILL');
    source.close();
  }
});

test('every stream the tests opened is closed on the server', async () => {
  await waitFor('no open stream on the server', async () => (await openStreams(device.server)) === 0, {
    timeoutMs: 10_000,
  });
  const sessions = await flotillaJson<RemoteSession[]>(device.admin, ['sessions', '--device', device.uuid]);
  assert.deepEqual(
    sessions.filter((s) => s.endedAt === null),
    [],
  );
});
