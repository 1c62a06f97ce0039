import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, tempDir, waitFor } from '@flotilla/testkit';
import { DockerEngine } from '../engine/docker-engine.js';
import { quiet, uniqueNamespace } from '../test-support/fixtures.js';
import { DeviceProcess, loopbackCertificate } from '../test-support/device-process.js';
import { StreamRelay, type StreamPeer } from '../test-support/stream-relay.js';
import { RemoteAccess, type RemoteAccessOptions } from './remote-access.js';

const MiB = 1024 * 1024;

async function listen(onConnection: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** Writes `total` bytes of `block` repeated, honouring back-pressure; `written` counts what write() accepted. */
function produce(socket: Socket, block: Buffer, total: number, progress: { written: number; full: number }): void {
  const more = (): void => {
    while (progress.written < total) {
      progress.written += block.length;
      if (!socket.write(block)) {
        progress.full += 1;
        socket.once('drain', more);
        return;
      }
    }
    socket.end();
  };
  more();
}

/**
 * The agent's half of remote streams against a small WebSocket server playing the relay (test-support/stream-relay):
 * TCP tunnels to loopback servers, host shells (pty and pipes), back-pressure both ways, limits and stop.
 */
describe('remote access: tunnels and host shells', () => {
  let relay: StreamRelay;
  const remotes: RemoteAccess[] = [];
  const servers: Server[] = [];

  const remote = (options: Partial<RemoteAccessOptions> = {}): RemoteAccess => {
    const r = new RemoteAccess({
      apiEndpoint: relay.apiEndpoint,
      uuid: relay.uuid,
      deviceApiKey: relay.deviceApiKey,
      engine: new DockerEngine(),
      namespace: uniqueNamespace(),
      appId: () => undefined,
      hostShell: '/bin/sh',
      log: quiet,
      ...options,
    });
    remotes.push(r);
    return r;
  };
  const open = async (r: RemoteAccess, request: Parameters<StreamRelay['message']>[0]): Promise<StreamPeer> => {
    const message = relay.message(request);
    r.open(message);
    return relay.peer(message.id);
  };
  const server = async (onConnection: (socket: Socket) => void): Promise<number> => {
    const { server, port } = await listen(onConnection);
    servers.push(server);
    return port;
  };

  before(async () => {
    relay = await StreamRelay.start();
  });
  after(async () => {
    await Promise.all(remotes.map((r) => r.stop()));
    for (const s of servers) s.close();
    await relay.close();
  });

  it('tunnels 20 MB to a TCP echo server and back unchanged, then ends with eof both ways', async (t) => {
    const port = await server((socket) => socket.pipe(socket));
    const peer = await open(remote(), { kind: 'tcp', port });
    await peer.control('ready');
    const payload = randomBytes(20 * MiB);
    const back = createHash('sha256');
    peer.onBytes = (data) => back.update(data);
    const started = performance.now();
    for (let at = 0; at < payload.length; at += 64 * 1024) peer.ws.send(payload.subarray(at, at + 64 * 1024));
    peer.send({ type: 'eof' });
    await peer.control('eof', 30_000);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(peer.received, payload.length);
    assert.equal(back.digest('hex'), createHash('sha256').update(payload).digest('hex'));
    assert.equal(await peer.closed, 1000, 'the stream closes once the TCP connection has');
    t.diagnostic(`20 MiB each way through the tunnel in ${seconds.toFixed(2)} s (${(20 / seconds).toFixed(0)} MiB/s)`);
  });

  it('over TLS (wss://, all-zero mask): 8 MB to a TCP echo server and back unchanged', async () => {
    const tls = await loopbackCertificate();
    const secure = await StreamRelay.start({ tls });
    // A process of its own, to trust the relay's certificate the way a device trusts its server's (its CA store).
    const device = await DeviceProcess.start(secure, { env: { NODE_EXTRA_CA_CERTS: tls.certFile } });
    try {
      assert.match(secure.apiEndpoint, /^https:/);
      const port = await server((socket) => socket.pipe(socket));
      const message = secure.message({ kind: 'tcp', port });
      device.open(message);
      const peer = await secure.peer(message.id);
      await peer.control('ready');
      const payload = randomBytes(8 * MiB);
      const back = createHash('sha256');
      peer.onBytes = (data) => back.update(data);
      for (let at = 0; at < payload.length; at += 64 * 1024) peer.ws.send(payload.subarray(at, at + 64 * 1024));
      peer.send({ type: 'eof' });
      await peer.control('eof', 30_000);
      assert.equal(back.digest('hex'), createHash('sha256').update(payload).digest('hex'));
    } finally {
      await device.stop();
      await secure.close();
      await tls.remove();
    }
  });

  it('half-close: the user eof ends the TCP write side, and the answer sent after it still arrives', async () => {
    const port = await server((socket) => {
      let n = 0;
      socket.on('data', (d: Buffer) => {
        n += d.length;
      });
      socket.on('end', () => socket.end(`got ${n} bytes`));
    });
    const peer = await open(remote(), { kind: 'tcp', port });
    await peer.control('ready');
    peer.ws.send(Buffer.from('hello'));
    peer.send({ type: 'eof' });
    await peer.control('eof');
    assert.equal(Buffer.concat(peer.bytes).toString(), 'got 5 bytes');
    assert.equal(await peer.closed, 1000);
  });

  it('a port nothing listens on: an error frame (NETWORK_ERROR), then the stream closes', async () => {
    const peer = await open(remote(), { kind: 'tcp', port: await freePort() });
    const error = await peer.control('error');
    assert.equal(error.code, 'NETWORK_ERROR');
    assert.match(error.message, /connection refused/);
    await peer.closed;
    assert.equal(
      peer.controls.some((m) => m.type === 'ready'),
      false,
    );
  });

  it('a service the device does not run: SERVICE_NOT_FOUND, for tunnels and shells', async () => {
    const r = remote();
    for (const request of [
      { kind: 'tcp', port: 80, service: 'nope' },
      { kind: 'shell', service: 'nope', tty: true },
    ] as const) {
      const peer = await open(r, request);
      assert.equal((await peer.control('error')).code, 'SERVICE_NOT_FOUND');
      await peer.closed;
    }
  });

  it('host terminal (pty): what is typed runs, output comes back, the exit status ends it', async () => {
    const peer = await open(remote(), { kind: 'shell', tty: true, cols: 100, rows: 30 });
    await peer.control('ready');
    peer.stdin('echo $((6*7)); stty size; exit 7\n');
    assert.equal((await peer.control('exit')).code, 7);
    const out = peer.text('stdout');
    // The typed line is echoed as typed ($((6*7))); the prompt may precede what the commands print.
    assert.match(out, /42\r\n/, `the shell computed it: ${JSON.stringify(out)}`);
    assert.match(out, /30 100\r\n/, 'the terminal has the size asked for');
    assert.equal(peer.text('stderr'), '', 'a terminal has one output');
    assert.equal(await peer.closed, 1000);
  });

  it('host terminal resize: stty size reports the new size', async () => {
    const peer = await open(remote(), { kind: 'shell', tty: true });
    await peer.control('ready');
    peer.send({ type: 'resize', cols: 123, rows: 45 });
    peer.stdin('stty size\n');
    await peer.output('45 123');
    peer.stdin('exit\n');
    assert.equal((await peer.control('exit')).code, 0);
  });

  it('host command without a TTY: stdout and stderr apart, its exit status; 128+n when killed by signal n', async () => {
    const r = remote();
    const peer = await open(r, { kind: 'shell', tty: false, command: 'echo out; echo err >&2; exit 3' });
    assert.equal((await peer.control('exit')).code, 3);
    assert.equal(peer.text('stdout'), 'out\n');
    assert.equal(peer.text('stderr'), 'err\n');
    await peer.closed;
    const killed = await open(r, { kind: 'shell', tty: false, command: 'kill -9 $$' });
    assert.equal((await killed.control('exit')).code, 137);
  });

  it('host command without a TTY reads stdin until the user eof', async () => {
    const peer = await open(remote(), { kind: 'shell', tty: false, command: 'cat; echo done' });
    await peer.control('ready');
    peer.stdin('abc');
    peer.send({ type: 'eof' });
    assert.equal((await peer.control('exit')).code, 0);
    assert.equal(peer.text('stdout'), 'abcdone\n');
  });

  it('slow user: a TCP source is held back while the user does not read, and nothing is lost', async (t) => {
    const total = 200 * MiB;
    const block = randomBytes(64 * 1024);
    const progress = { written: 0, full: 0 };
    const port = await server((socket) => produce(socket, block, total, progress));
    const peer = await open(remote(), { kind: 'tcp', port });
    peer.ws.pause(); // the user's side reads nothing from here on
    peer.onBytes = () => undefined; // counted in peer.received, not kept
    // Stalled: what the source could write stays the same for half a second.
    let last = -1;
    await waitFor(
      'the source to stall',
      () => {
        const stalled = progress.written === last;
        last = progress.written;
        return stalled;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    assert.ok(progress.full > 0, 'the source saw write() return false');
    assert.ok(
      progress.written < 40 * MiB,
      `the source wrote ${(progress.written / MiB).toFixed(1)} MiB of 200 before it was held back`,
    );
    t.diagnostic(`source held back after ${(progress.written / MiB).toFixed(1)} MiB of 200`);
    peer.ws.resume();
    await peer.control('eof', 60_000);
    assert.equal(peer.received, total);
  });

  for (const tty of [true, false]) {
    it(`slow user: a host command's output is held back (${tty ? 'pty' : 'pipes'}), and nothing is lost`, async (t) => {
      const total = 64 * MiB;
      const dir = await tempDir('flotilla-remote-');
      const file = join(dir.path, 'teed');
      // tee writes each piece to the file before the terminal or pipe: the file's size is what the command got out.
      const command = `head -c ${total} /dev/zero | tee ${file}`;
      const peer = await open(remote(), { kind: 'shell', tty, command });
      peer.ws.pause();
      peer.onBytes = () => undefined; // counted in channelBytes, not kept
      let last = -1;
      const size = async (): Promise<number> => (await stat(file).catch(() => ({ size: 0 }))).size;
      await waitFor(
        'the command to stall',
        async () => {
          const now = await size();
          const stalled = now === last && now > 0;
          last = now;
          return stalled;
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      );
      t.diagnostic(`command held back after ${(last / MiB).toFixed(1)} MiB of 64`);
      assert.ok(last < 24 * MiB, `the command wrote ${(last / MiB).toFixed(1)} MiB of 64 before it was held back`);
      peer.ws.resume();
      assert.equal((await peer.control('exit', 60_000)).code, 0);
      assert.equal(peer.channelBytes[1], total);
      await dir.remove();
    });
  }

  it('slow device sink: the WebSocket is not read while the TCP peer does not read, and nothing is lost', async (t) => {
    const total = 64 * MiB;
    let sink: Socket | undefined;
    let got = 0;
    const port = await server((socket) => {
      sink = socket;
      socket.pause();
      socket.on('data', (d: Buffer) => {
        got += d.length;
      });
      socket.on('end', () => socket.end());
    });
    const peer = await open(remote(), { kind: 'tcp', port });
    await peer.control('ready');
    const block = randomBytes(64 * 1024);
    for (let at = 0; at < total; at += block.length) peer.ws.send(block);
    peer.send({ type: 'eof' });
    let last = -1;
    await waitFor(
      'the user side to stall',
      () => {
        const stalled = peer.ws.bufferedAmount === last;
        last = peer.ws.bufferedAmount;
        return stalled;
      },
      { timeoutMs: 20_000, intervalMs: 500 },
    );
    const taken = total - peer.ws.bufferedAmount;
    assert.equal(got, 0);
    assert.ok(taken < 24 * MiB, `the device side took ${(taken / MiB).toFixed(1)} MiB of 64 from the user`);
    t.diagnostic(`the device side took ${(taken / MiB).toFixed(1)} MiB of 64 while its TCP peer read nothing`);
    sink?.resume();
    await peer.control('eof', 60_000);
    assert.equal(got, total);
  });

  it('more streams than the limit: RATE_LIMITED for the one over it', async () => {
    const port = await server((socket) => socket.pipe(socket));
    const r = remote({ maxStreams: 1 });
    const first = await open(r, { kind: 'tcp', port });
    await first.control('ready');
    const second = await open(r, { kind: 'tcp', port });
    assert.equal((await second.control('error')).code, 'RATE_LIMITED');
    await second.closed;
    first.ws.send(Buffer.from('still here'));
    await waitFor('the first stream still works', () => first.received === 10);
  });

  it('a dial the relay refuses (wrong key) is dropped', async () => {
    const before = relay.refused;
    const r = remote({ deviceApiKey: 'wrong' });
    r.open(relay.message({ kind: 'tcp', port: 1 }));
    await waitFor('the refused dial', () => relay.refused === before + 1);
    await waitFor('the stream dropped', () => r.active === 0);
  });

  it('stop() ends every stream and the processes behind them', async () => {
    const port = await server((socket) => socket.pipe(socket));
    const r = remote();
    const tunnel = await open(r, { kind: 'tcp', port });
    await tunnel.control('ready');
    const shell = await open(r, { kind: 'shell', tty: true });
    await shell.control('ready');
    shell.stdin('echo pid=$$\n');
    const pid = Number(await waitFor('the shell pid', () => /pid=(\d+)\r?\n/.exec(shell.text('stdout'))?.[1]));
    assert.equal(r.active, 2);
    await r.stop();
    assert.equal(r.active, 0);
    await tunnel.closed;
    await shell.closed;
    await waitFor('the shell process gone', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
  });
});
