import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { STREAM_CHANNEL, STREAM_CLOSE_REVOKED, channelFrame, generateKey } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import WebSocket, { WebSocketServer } from 'ws';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';
import { streamDevice, userStream } from '../testing/stream-device.js';
import { pruneSessions } from './sessions.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A TCP server on loopback answering each connection with `answer(socket)`. */
async function tcpServer(answer: Parameters<typeof createServer>[1]): Promise<Server & { port: number }> {
  const server = createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

/** Collects a user stream's data until it closes. */
async function drained(stream: ReturnType<typeof userStream>): Promise<Buffer> {
  await stream.closed;
  return Buffer.concat(stream.data);
}

/** A second user of the live server's organization with `role`, and their API key. */
async function memberWithRole(live: LiveDevice, role: 'member' | 'observer') {
  const username = `u${randomBytes(4).toString('hex')}`;
  const password = generateKey();
  const created = await live.api('POST', '/api/v1/users', { username, password });
  assert.equal(created.status, 201);
  const login = await live.api('POST', '/api/v1/auth/login', { username, password });
  const token = login.data.token as string;
  const whoami = await live.api('GET', '/api/v1/whoami');
  const org = whoami.data.organizations[0].handle as string;
  assert.equal((await live.api('POST', `/api/v1/organizations/${org}/invitations`, { username, role })).status, 202);
  const invitations = await live.api('GET', '/api/v1/invitations', undefined, token);
  const accepted = await live.api('POST', `/api/v1/invitations/${invitations.data.items[0].id}/accept`, {}, token);
  assert.ok(accepted.status < 300, JSON.stringify(accepted.data));
  const key = await live.api('POST', '/api/v1/api-keys', { name: 'k' }, token);
  return { userId: created.data.id as number, org, key: key.data.key as string, keyId: key.data.id as number };
}

for (const db of testDatabases()) {
  describe(`remote access through the server (${db.dialect})`, () => {
    let live: LiveDevice;
    let device: ReturnType<typeof streamDevice>;
    let tunnel: (port: number, key?: string) => ReturnType<typeof userStream>;

    before(async () => {
      live = await liveServerWithDevice(db, { publicUrlDomain: 'devices.test' });
      device = streamDevice(live.server.url, live.uuid, live.deviceKey);
      await device.opened;
      tunnel = (port, key = live.apiKey) =>
        userStream(live.server.url, `/api/v1/devices/${live.uuid}/tunnel?port=${port}`, key);
    });
    after(async () => {
      device.close();
      await live.close();
    });

    test('a tunnel carries a 20 MB download byte for byte, and the audit log records it', async () => {
      const payload = randomBytes(20 * 1024 * 1024);
      const source = await tcpServer((socket) => socket.end(payload));
      try {
        const stream = tunnel(source.port);
        await stream.opened;
        const received = await drained(stream);
        assert.equal(sha256(received), sha256(payload));
        assert.deepEqual(stream.controls.slice(0, 1), [{ type: 'ready' }]);
        const log = await waitFor(
          'the session recorded as ended',
          async () => {
            const answer = await live.api('GET', `/api/v1/remote-sessions?device=${live.uuid}`);
            const session = answer.data.items.find((s: { target: string }) => s.target === `port ${source.port}`);
            return session?.endedAt
              ? (session as { kind: string; user: { username: string }; bytesOut: number; endReason: string })
              : undefined;
          },
          { timeoutMs: 5_000 },
        );
        assert.equal(log.kind, 'tunnel');
        assert.equal(log.user.username, 'admin');
        assert.ok(log.bytesOut >= payload.length, `bytes out ${log.bytesOut}`);
        assert.equal(log.endReason, 'closed');
      } finally {
        source.close();
      }
    });

    test('half-close crosses the tunnel: the service sees the end of the request and still answers', async () => {
      const source = await tcpServer((socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk) => chunks.push(chunk));
        socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length}`));
      });
      try {
        const stream = tunnel(source.port);
        await stream.opened;
        await waitFor('ready', () => stream.controls.length > 0, { timeoutMs: 5_000 });
        stream.socket.send(Buffer.alloc(1000, 1));
        stream.socket.send(JSON.stringify({ type: 'eof' }));
        assert.equal((await drained(stream)).toString(), 'got 1000');
      } finally {
        source.close();
      }
    });

    test('a shell stream relays stdin, stdout and the exit code', async () => {
      const stream = userStream(live.server.url, `/api/v1/devices/${live.uuid}/shell?cols=80&rows=24`, live.apiKey);
      await stream.opened;
      stream.socket.send(channelFrame(STREAM_CHANNEL.stdin, Buffer.from('echo hi\nexit 7\n')));
      await stream.closed;
      assert.deepEqual(stream.controls.at(-1), { type: 'exit', code: 7 });
      assert.match(Buffer.concat(stream.data.map((d) => d.subarray(1))).toString(), /echo hi/);
      assert.deepEqual(device.requests.at(-1)?.request, { kind: 'shell', tty: true, cols: 80, rows: 24 });
    });

    test('a closed port on the device answers error, not silence', async () => {
      const closed = await tcpServer(() => undefined);
      closed.close();
      const stream = tunnel(closed.port);
      await stream.opened;
      await stream.closed;
      assert.equal((stream.controls[0] as { code: string }).code, 'NETWORK_ERROR');
    });

    test('a slow reader stalls the device side instead of growing the server', async () => {
      let offered = 0;
      let writer: import('node:net').Socket | undefined;
      const source = await tcpServer((socket) => {
        writer = socket;
        const chunk = Buffer.alloc(64 * 1024, 7);
        const pump = () => {
          while (offered < 400 * 1024 * 1024) {
            offered += chunk.length;
            if (!socket.write(chunk)) {
              socket.once('drain', pump);
              return;
            }
          }
          socket.end();
        };
        pump();
      });
      try {
        const stream = tunnel(source.port);
        await stream.opened;
        // The reader stops reading at once: only kernel buffers and the relays' bounded windows may fill.
        stream.socket.pause();
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const stalledAt = offered;
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        assert.ok(offered === stalledAt, `the source kept writing: ${stalledAt} then ${offered}`);
        assert.ok(stalledAt < 48 * 1024 * 1024, `${(stalledAt / 1048576).toFixed(1)} MB left the source unread`);
        console.log(`slow reader: the source stalled after ${(stalledAt / 1048576).toFixed(1)} MB of 400 MB`);
        stream.socket.terminate();
      } finally {
        writer?.destroy();
        source.close();
      }
    });

    test('refusals come before the upgrade: no key, bad port, another tenant, an observer', async () => {
      const refused = async (route: string, key: string) => {
        const stream = userStream(live.server.url, route, key);
        const error = await stream.opened.then(
          () => assert.fail('opened'),
          (e: { status: number; body: string }) => e,
        );
        return { status: error.status, code: JSON.parse(error.body).error.code as string };
      };
      const base = `/api/v1/devices/${live.uuid}`;
      assert.deepEqual(await refused(`${base}/tunnel?port=22`, 'wrong'), { status: 401, code: 'UNAUTHENTICATED' });
      assert.deepEqual(await refused(`${base}/tunnel?port=0`, live.apiKey), { status: 400, code: 'VALIDATION_FAILED' });
      const observer = await memberWithRole(live, 'observer');
      assert.deepEqual(await refused(`${base}/shell`, observer.key), { status: 403, code: 'FORBIDDEN' });
      assert.deepEqual(await refused(`${base}/tunnel?port=22`, observer.key), { status: 403, code: 'FORBIDDEN' });
      const enable = await live.api('PUT', `${base}/public-url`, { port: 80 }, observer.key);
      assert.equal(enable.status, 404, JSON.stringify(enable.data));
      // The observer still reads: the device and the audit log.
      assert.equal((await live.api('GET', base, undefined, observer.key)).status, 200);
      assert.equal((await live.api('GET', '/api/v1/remote-sessions', undefined, observer.key)).status, 200);
      // A user of another organization does not even learn that the device exists.
      const password = generateKey();
      assert.equal((await live.api('POST', '/api/v1/users', { username: 'stranger', password })).status, 201);
      const login = await live.api('POST', '/api/v1/auth/login', { username: 'stranger', password });
      assert.equal(
        (await live.api('POST', '/api/v1/organizations', { name: 'elsewhere' }, login.data.token)).status,
        201,
      );
      assert.deepEqual(await refused(`${base}/shell`, login.data.token), { status: 404, code: 'DEVICE_NOT_FOUND' });
    });

    test("deleting the user's API key ends their open stream at once", async () => {
      const member = await memberWithRole(live, 'member');
      const source = await tcpServer(() => undefined);
      try {
        const stream = tunnel(source.port, member.key);
        await stream.opened;
        await waitFor('ready', () => stream.controls.length > 0, { timeoutMs: 5_000 });
        const deleted = await live.api('DELETE', `/api/v1/api-keys/${member.keyId}`, undefined, member.key);
        assert.equal(deleted.status, 204, JSON.stringify(deleted.data));
        const closed = await stream.closedWithin(3_000);
        assert.equal(closed?.code, STREAM_CLOSE_REVOKED);
      } finally {
        source.close();
      }
    });

    test('removing the membership ends the stream at once', async () => {
      const member = await memberWithRole(live, 'member');
      const source = await tcpServer(() => undefined);
      try {
        const stream = tunnel(source.port, member.key);
        await stream.opened;
        const removed = await live.api('DELETE', `/api/v1/organizations/${member.org}/members/${member.userId}`);
        assert.equal(removed.status, 204, JSON.stringify(removed.data));
        const closed = await stream.closedWithin(3_000);
        assert.equal(closed?.code, STREAM_CLOSE_REVOKED);
      } finally {
        source.close();
      }
    });

    test('lowering the role to observer ends the stream at once; the observer keeps reading', async () => {
      const member = await memberWithRole(live, 'member');
      const source = await tcpServer(() => undefined);
      try {
        const stream = tunnel(source.port, member.key);
        await stream.opened;
        const lowered = await live.api('PATCH', `/api/v1/organizations/${member.org}/members/${member.userId}`, {
          role: 'observer',
        });
        assert.equal(lowered.status, 200, JSON.stringify(lowered.data));
        const closed = await stream.closedWithin(3_000);
        assert.equal(closed?.code, STREAM_CLOSE_REVOKED);
        assert.equal((await live.api('GET', `/api/v1/devices/${live.uuid}`, undefined, member.key)).status, 200);
      } finally {
        source.close();
      }
    });

    test('a public URL serves the device page and WebSockets only while it is on', async () => {
      const page = createHttpServer((request, response) => response.end(`page ${request.url}`));
      const echo = new WebSocketServer({ server: page });
      echo.on('connection', (socket) =>
        socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary })),
      );
      await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
      const port = (page.address() as AddressInfo).port;
      const base = `/api/v1/devices/${live.uuid}/public-url`;
      try {
        const off = await fetch(`${live.server.url}/public/${live.uuid}/`);
        assert.equal(off.status, 404);
        await off.arrayBuffer();
        const enabled = await live.api('PUT', base, { port });
        assert.equal(enabled.status, 200, JSON.stringify(enabled.data));
        // Host-based with a wildcard domain (the name resolves to nothing here, so the Host header says it) …
        const port0 = new URL(live.server.url).port;
        assert.equal(enabled.data.url, `http://${live.uuid}.devices.test:${port0}/`);
        const byHost = await new Promise<string>((resolve, reject) => {
          const request = httpRequest(
            {
              host: '127.0.0.1',
              port: port0,
              path: '/by-host',
              headers: { host: `${live.uuid}.devices.test:${port0}` },
            },
            (response) => {
              let text = '';
              response.on('data', (chunk: Buffer) => {
                text += chunk.toString();
              });
              response.on('end', () => resolve(text));
            },
          );
          request.on('error', reject);
          request.end();
        });
        assert.equal(byHost, 'page /by-host');
        // … and path-based always.
        const pathBased = `${live.server.url}/public/${live.uuid}/`;
        const served = await fetch(`${pathBased}hello?x=1`);
        assert.equal(await served.text(), 'page /hello?x=1');
        const ws = new WebSocket(`${pathBased.replace('http', 'ws')}echo`);
        await new Promise((resolve, reject) => {
          ws.once('open', resolve);
          ws.once('error', reject);
        });
        ws.send('ping');
        const [reply] = await new Promise<[Buffer]>((resolve) => ws.once('message', (data: Buffer) => resolve([data])));
        assert.equal(reply.toString(), 'ping');
        const wsClosed = new Promise((resolve) => ws.once('close', resolve));
        assert.equal((await live.api('DELETE', base)).status, 204);
        await Promise.race([
          wsClosed,
          new Promise((_, reject) => setTimeout(() => reject(new Error('still open')), 3_000)),
        ]);
        const after = await fetch(`${pathBased}hello`);
        assert.equal(after.status, 404);
        await after.arrayBuffer();
      } finally {
        echo.close();
        page.close();
      }
    });

    test('the audit log drops sessions that ended before the retention window, and only those', async () => {
      const { db } = live.server.app.flotilla;
      const ended = await db.selectFrom('remote_sessions').select('id').where('ended_at', 'is not', null).execute();
      assert.ok(ended.length >= 2, 'sessions recorded by the tests above');
      await db
        .updateTable('remote_sessions')
        .set({ ended_at: '2000-01-01T00:00:00.000Z' })
        .where('id', '=', ended[0]!.id)
        .execute();
      const removed = await pruneSessions(db, new Date(Date.now() - 90 * 86_400_000).toISOString());
      assert.equal(removed, 1);
      const left = await db.selectFrom('remote_sessions').select('id').where('ended_at', 'is not', null).execute();
      assert.deepEqual(
        left.map((r) => r.id).sort(),
        ended
          .slice(1)
          .map((r) => r.id)
          .sort(),
      );
    });

    test('deleting the device ends its streams', async () => {
      const source = await tcpServer(() => undefined);
      try {
        const stream = tunnel(source.port);
        await stream.opened;
        await waitFor('ready', () => stream.controls.length > 0, { timeoutMs: 5_000 });
        assert.equal((await live.api('DELETE', `/api/v1/devices/${live.uuid}`)).status, 204);
        const closed = await stream.closedWithin(3_000);
        assert.equal(closed?.code, STREAM_CLOSE_REVOKED);
        const sessions = await live.api('GET', '/api/v1/remote-sessions?limit=1');
        assert.equal(sessions.data.items[0].endReason, 'device-deleted');
      } finally {
        source.close();
      }
    });
  });
}
