import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { STREAM_CLOSE_REVOKED } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';
import { streamDevice, userStream } from '../testing/stream-device.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const postgres = testDatabases().find((d) => d.dialect === 'postgres');

/**
 * Two server nodes over one PostgreSQL database: the user's WebSocket lands on node A, the device holds its
 * connection (and dials its stream halves) on node B, which relays them to A.
 */
describe('remote access across two server nodes (postgres)', { skip: postgres ? false : 'no PostgreSQL' }, () => {
  let live: LiveDevice;
  let nodeB: RunningServer;
  let device: ReturnType<typeof streamDevice>;

  before(async () => {
    live = await liveServerWithDevice(postgres!);
    nodeB = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: live.databaseUrl! });
    device = streamDevice(nodeB.url, live.uuid, live.deviceKey);
    await device.opened;
  });
  after(async () => {
    device.close();
    await nodeB.close();
    await live.close();
  });

  test('a tunnel opened on node A reaches the device connected to node B', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const source = createServer((socket) => socket.end(payload));
    await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
    try {
      const port = (source.address() as AddressInfo).port;
      const stream = userStream(live.server.url, `/api/v1/devices/${live.uuid}/tunnel?port=${port}`, live.apiKey);
      await stream.opened;
      await stream.closed;
      assert.equal(sha256(Buffer.concat(stream.data)), sha256(payload));
      assert.equal(nodeB.app.remoteAccess.counts().waiting, 0);
    } finally {
      source.close();
    }
  });

  test('revoking the key on node B ends the stream relayed by node A', async () => {
    const key = await live.api('POST', '/api/v1/api-keys', { name: 'cluster' });
    const source = createServer(() => undefined);
    await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
    try {
      const port = (source.address() as AddressInfo).port;
      const stream = userStream(live.server.url, `/api/v1/devices/${live.uuid}/tunnel?port=${port}`, key.data.key);
      await stream.opened;
      await waitFor('ready', () => stream.controls.length > 0, { timeoutMs: 10_000 });
      const response = await fetch(`${nodeB.url}/api/v1/api-keys/${key.data.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${live.apiKey}` },
      });
      assert.equal(response.status, 204);
      const closed = await stream.closedWithin(5_000);
      assert.equal(closed?.code, STREAM_CLOSE_REVOKED);
    } finally {
      source.close();
    }
  });

  test("a public URL on node A serves the device's page, and turning it off on node B closes it", async () => {
    const page = createHttpServer((request, response) => {
      if (request.url === '/slow') response.write('first part…');
      else response.end(`page ${request.url}`);
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    try {
      const port = (page.address() as AddressInfo).port;
      const enabled = await live.api('PUT', `/api/v1/devices/${live.uuid}/public-url`, { port });
      assert.equal(enabled.status, 200);
      assert.equal(await (await fetch(`${enabled.data.url}x`)).text(), 'page /x');
      // A response still streaming when the switch goes off on the other node is cut there too.
      const slow = await fetch(`${enabled.data.url}slow`);
      const reader = slow.body!.getReader();
      await reader.read();
      const off = await fetch(`${nodeB.url}/api/v1/devices/${live.uuid}/public-url`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${live.apiKey}` },
      });
      assert.equal(off.status, 204);
      const ended = await Promise.race([
        reader.read().then(
          (chunk) => (chunk.done ? 'ended' : 'more'),
          () => 'cut',
        ),
        new Promise((resolve) => setTimeout(() => resolve('still open'), 5_000)),
      ]);
      assert.ok(ended === 'cut' || ended === 'ended', `the response is ${ended}`);
    } finally {
      page.closeAllConnections();
      page.close();
    }
  });
});
