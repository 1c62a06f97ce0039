/**
 * Issue 12 acceptance, two server nodes over one PostgreSQL database: the real agent holds its connection to node B,
 * the real CLI talks to node A, so every stream's device half lands on B and is relayed to A.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { flotilla } from '../test-support/cli-runner.js';
import { type RemoteDevice, openStreams, sha256, startRemoteDevice, startTunnel, stopTunnel } from './remote-device.js';

const postgres = testDatabases().find((d) => d.dialect === 'postgres');

describe('remote access across two server nodes', {
  skip: postgres ? false : 'two nodes need PostgreSQL: set FLOTILLA_TEST_POSTGRES_URL',
}, () => {
  let database: { url: string; drop: () => Promise<void> } | undefined;
  let device: RemoteDevice | undefined;

  before(async () => {
    database = await postgres?.create();
    device = await startRemoteDevice('e2enodes', { deploy: false, databaseUrl: database?.url, secondNode: true });
    assert.notEqual(device.deviceNode.url, device.server.url);
  });

  after(async () => {
    await device?.close();
    await database?.drop();
  });

  test('a one-shot command on the device’s host, asked on node A, runs through node B', async () => {
    const d = device as RemoteDevice;
    assert.deepEqual(await flotilla(d.admin, ['ssh', d.uuid, '--', 'echo across']), {
      code: 0,
      stdout: 'across\n',
      stderr: '',
    });
  });

  test('a tunnel opened on node A carries a download from the device’s host intact', async () => {
    const d = device as RemoteDevice;
    const file = randomBytes(8 * 1024 * 1024);
    const page = createServer((_request, response) => response.end(file));
    page.listen(0, '127.0.0.1');
    await once(page, 'listening');
    const tunnel = await startTunnel(d.admin, d.uuid, `0:${(page.address() as AddressInfo).port}`);
    try {
      const response = await fetch(`http://127.0.0.1:${tunnel.port}/file`);
      assert.equal(response.status, 200);
      assert.equal(sha256(Buffer.from(await response.arrayBuffer())), sha256(file));
      await stopTunnel(tunnel);
      await waitFor(
        'no open stream on either node',
        async () => (await openStreams(d.server)) + (await openStreams(d.deviceNode)) === 0,
        { timeoutMs: 10_000 },
      );
    } finally {
      tunnel.cli.child.kill('SIGKILL');
      page.closeAllConnections();
      page.close();
    }
  });
});
