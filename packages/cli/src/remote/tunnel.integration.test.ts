import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { type Server as HttpServer, createServer as createHttpServer, get } from 'node:http';
import { type AddressInfo, type Server, connect, createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { freePort, tempDir, waitFor } from '@flotilla/testkit';
import { writeCredentials } from '../credentials/credentials.js';
import { CLI_MAIN, flotilla } from '../test-support/cli-runner.js';
import { type FakeRelay, startFakeRelay } from '../test-support/fake-relay.js';
import { openTunnel } from './tunnel.js';

// The real CLI binary's `tunnel` against a fake relay+device (fake-relay.ts) whose tunnels are real TCP connections
// to servers of this test: an HTTP server on the "host" (127.0.0.1), one at the "web" service's address
// (127.0.0.2), and a TCP echo server that closes its half only when the client closed its own.
const UUID = 'c0ffee00112233445566778899aabbcc';
const BLOB = randomBytes(20 * 1024 * 1024);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every wait below is bounded by this, whatever hangs. */
const TEST_TIMEOUT_MS = 30_000;
let relay: FakeRelay;
let dir: { path: string; remove: () => Promise<void> };
let config: string;
let host: HttpServer;
let web: HttpServer;
let echo: Server;

function httpServer(address: string): Promise<HttpServer> {
  const server = createHttpServer((request, response) => {
    if (request.url === '/blob') return response.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
    const size = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('size') ?? 0);
    if (request.url?.startsWith('/part')) return response.end(BLOB.subarray(0, size));
    response.end(`served by ${address}`);
  });
  return new Promise((resolve) => server.listen(0, address, () => resolve(server)));
}
const portOf = (server: Server | HttpServer) => (server.address() as AddressInfo).port;

before(async () => {
  host = await httpServer('127.0.0.1');
  web = await httpServer('127.0.0.2');
  echo = createServer({ allowHalfOpen: true }, (socket) => {
    socket.pipe(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  relay = await startFakeRelay({
    devices: [
      { uuid: UUID, name: 'probe-1', services: { web: '127.0.0.2' } },
      { uuid: 'f'.repeat(32), name: 'locked', services: {} },
    ],
    forbidden: ['locked'],
  });
  dir = await tempDir('flotilla-cli-tunnel-');
  config = join(dir.path, 'config');
  await writeCredentials({ url: relay.url, token: relay.token }, { FLOTILLA_CONFIG_DIR: config });
});
after(async () => {
  await relay.close();
  for (const server of [host, web, echo]) server.close();
  await dir.remove();
});

/** Starts `flotilla tunnel …` and waits for one `tunnel <address> → <target>` line per mapping. */
async function startTunnel(args: string[], mappings: number) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, [CLI_MAIN, 'tunnel', ...args], {
    env: { ...process.env, FLOTILLA_CONFIG_DIR: config },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = await waitFor(
    `${mappings} tunnel lines`,
    () => {
      const found = [...stdout.matchAll(/^tunnel 127\.0\.0\.1:(\d+) → (\S+)$/gm)];
      if (child.exitCode !== null) throw new Error(`flotilla tunnel exited: ${stderr}`);
      return found.length === mappings ? found : undefined;
    },
    { timeoutMs: 10_000 },
  );
  return {
    ports: lines.map((m) => Number(m[1])),
    targets: lines.map((m) => m[2]),
    stderr: () => stderr,
    stdout: () => stdout,
    exit,
    child,
  };
}

function download(port: number, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve(Buffer.concat(chunks)));
      response.on('error', reject);
    }).on('error', reject);
  });
}

/** Sends `data`, half-closes, and collects what comes back until the other side closes its half too. */
function echoThrough(port: number, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.end(data);
  });
}

test('tunnel: 20 MB intact, concurrent connections, service addresses, half-close, refused ports, Ctrl-C', {
  timeout: TEST_TIMEOUT_MS,
}, async (t) => {
  const refused = await freePort();
  const tunnel = await startTunnel(
    ['probe-1', `0:${portOf(host)}`, `0:web:${portOf(web)}`, `0:${portOf(echo)}`, `0:${refused}`],
    4,
  );
  try {
    const [hostPort, webPort, echoPort, refusedPort] = tunnel.ports as [number, number, number, number];
    assert.deepEqual(tunnel.targets, [
      `probe-1:${portOf(host)}`,
      `probe-1:web:${portOf(web)}`,
      `probe-1:${portOf(echo)}`,
      `probe-1:${refused}`,
    ]);

    const started = performance.now();
    const blob = await download(hostPort, '/blob');
    const seconds = (performance.now() - started) / 1000;
    assert.equal(blob.length, BLOB.length);
    assert.equal(sha256(blob), sha256(BLOB));
    t.diagnostic(`20 MiB through CLI tunnel + fake relay: ${seconds.toFixed(2)} s, ${(20 / seconds).toFixed(0)} MiB/s`);

    const sizes = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => i * 300_000 + i);
    const parts = await Promise.all(sizes.map((size) => download(hostPort, `/part?size=${size}`)));
    for (const [i, part] of parts.entries())
      assert.equal(sha256(part), sha256(BLOB.subarray(0, sizes[i])), `concurrent download ${i}`);

    assert.equal((await download(webPort, '/')).toString(), 'served by 127.0.0.2', 'the service’s address');

    const sent = BLOB.subarray(0, 3 * 1024 * 1024 + 17);
    const echoed = await echoThrough(echoPort, sent);
    assert.equal(sha256(echoed), sha256(sent), 'everything sent before the half-close comes back, then the end');

    // A refused connection: one error line, that local connection closed, the tunnel goes on serving.
    await assert.rejects(download(refusedPort, '/'));
    await waitFor('the error line', () => /ECONNREFUSED/.test(tunnel.stderr()), { timeoutMs: 5_000 });
    assert.match(
      tunnel.stderr(),
      new RegExp(
        `^error: 127\\.0\\.0\\.1:${refusedPort} → probe-1:${refused}: cannot connect to port ${refused}: ECONNREFUSED \\(NETWORK_ERROR\\)\\n$`,
      ),
    );
    assert.equal((await download(webPort, '/')).toString(), 'served by 127.0.0.2');
    assert.equal(tunnel.child.exitCode, null);

    const streams = relay.streams.filter((s) => s.kind === 'tunnel').length;
    assert.equal(streams, 1 + sizes.length + 1 + 1 + 1 + 1, 'one stream per TCP connection');
  } finally {
    tunnel.child.kill('SIGINT');
  }
  assert.equal(await tunnel.exit, 0, 'Ctrl-C ends the tunnel with status 0');
  for (const port of tunnel.ports)
    await assert.rejects(download(port, '/'), /ECONNREFUSED/, 'the listeners are closed');
});

test('tunnel: a refused upgrade is one error line with the server’s code; the tunnel keeps listening', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const tunnel = await startTunnel(['locked', '0:22'], 1);
  try {
    await assert.rejects(download(tunnel.ports[0]!, '/'));
    await waitFor('the error line', () => tunnel.stderr().includes('FORBIDDEN'), { timeoutMs: 5_000 });
    assert.equal(
      tunnel.stderr(),
      `error: 127.0.0.1:${tunnel.ports[0]} → locked:22: observers cannot open shells or tunnels (FORBIDDEN)\n`,
    );
    assert.equal(tunnel.child.exitCode, null);
  } finally {
    tunnel.child.kill('SIGTERM');
  }
  assert.equal(await tunnel.exit, 0);
});

test('tunnel: bad mappings, devices and addresses are refused before anything listens', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const cases: Array<[string[], RegExp]> = [
    [
      ['probe-1', '70000:22'],
      /^error: invalid mapping "70000:22": local port "70000" is not 0-65535 \(VALIDATION_FAILED\)\n$/,
    ],
    [['probe-1', '1:0'], /device port "0" is not 1-65535 \(VALIDATION_FAILED\)/],
    [['probe-1', '22'], /give <local port>:<device port> or <local port>:<service>:<device port>/],
    [['probe-1', '5000:22', '5000:23'], /local port 5000 is already used by another mapping \(VALIDATION_FAILED\)/],
    [['probe-1', '5000:-web:80'], /invalid mapping "5000:-web:80": service "-web"/],
    [['probe-1', '0:22', '--bind', 'localhost'], /invalid bind address "localhost".+\(VALIDATION_FAILED\)/],
    [['nope', '0:22'], /^error: no device "nope" \(DEVICE_NOT_FOUND\)\n$/],
    [['probe-1', `${portOf(echo)}:22`], /^error: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.* \(CONFLICT\)\n$/],
  ];
  for (const [args, expected] of cases) {
    const r = await flotilla(config, ['tunnel', ...args], { timeoutMs: 10_000 });
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, expected, args.join(' '));
  }
});

/** A device-side server that writes `total` bytes to each client as fast as the client takes them. */
async function sourceServer(total: number) {
  const pushed: number[] = [];
  const server = createServer((socket) => {
    const index = pushed.push(0) - 1;
    const chunk = Buffer.alloc(64 * 1024, 7);
    socket.on('error', () => undefined);
    const pump = () => {
      while (pushed[index]! < total) {
        pushed[index]! += chunk.length;
        if (!socket.write(chunk)) return void socket.once('drain', pump);
      }
      socket.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, pushed };
}

/** A device-side server that accepts connections and never reads. */
async function sinkServer() {
  const server = createServer((socket) => {
    socket.pause();
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

test('tunnel back-pressure: a client that stops reading stops the device; a device that stops reading stops the client', {
  timeout: TEST_TIMEOUT_MS,
}, async (t) => {
  const total = 128 * 1024 * 1024;
  // Loopback kernel buffers on both sockets of each of the three hops hold a few MiB each; without back-pressure the
  // CLI would take everything the device sends (or the client writes) into its memory instead.
  const bounded = 48 * 1024 * 1024;
  const source = await sourceServer(total);
  const sink = await sinkServer();
  const tunnel = await startTunnel(['probe-1', `0:${portOf(source.server)}`, `0:${portOf(sink)}`], 2);
  try {
    const [sourcePort, sinkPort] = tunnel.ports as [number, number];
    const reader = connect({ host: '127.0.0.1', port: sourcePort });
    reader.pause();
    await waitFor('the device to start sending', () => (source.pushed[0] ?? 0) > 0, { timeoutMs: 5_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stalled = source.pushed[0]!;
    t.diagnostic(`device → client, client not reading: the device could push ${(stalled / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(stalled < bounded, `the device pushed ${stalled} bytes to a client that reads nothing`);
    let received = 0;
    reader.on('data', (chunk: Buffer) => (received += chunk.length));
    const ended = new Promise((resolve) => reader.once('end', resolve));
    reader.resume();
    await ended;
    assert.equal(received, total, 'everything arrives once the client reads');

    const writer = connect({ host: '127.0.0.1', port: sinkPort });
    writer.on('error', () => undefined);
    await new Promise((resolve) => writer.once('connect', resolve));
    let accepted = 0;
    const chunk = Buffer.alloc(64 * 1024, 9);
    const deadline = Date.now() + 1_500;
    while (Date.now() < deadline && accepted < total) {
      if (writer.write(chunk)) accepted += chunk.length;
      else {
        accepted += chunk.length;
        await Promise.race([
          new Promise((resolve) => writer.once('drain', resolve)),
          new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now()))),
        ]);
      }
    }
    const flushed = accepted - writer.writableLength;
    t.diagnostic(`client → device, device not reading: the client could write ${(flushed / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(flushed < bounded, `the client wrote ${flushed} bytes to a device that reads nothing`);
    writer.destroy();
  } finally {
    tunnel.child.kill('SIGINT');
    source.server.close();
    sink.close();
  }
  assert.equal(await tunnel.exit, 0);
});

test('openTunnel, the module the bench uses: ports in mapping order, close() stops listening', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const tunnel = await openTunnel({
    apiUrl: relay.url,
    token: relay.token,
    device: UUID,
    mappings: [
      { localPort: 0, devicePort: portOf(host) },
      { localPort: 0, service: 'web', devicePort: portOf(web) },
    ],
  });
  assert.equal(tunnel.ports.length, 2);
  assert.equal((await download(tunnel.ports[1]!, '/')).toString(), 'served by 127.0.0.2');
  assert.equal(sha256(await download(tunnel.ports[0]!, '/part?size=100000')), sha256(BLOB.subarray(0, 100_000)));
  await tunnel.close();
  await assert.rejects(download(tunnel.ports[0]!, '/'), /ECONNREFUSED/);
});
