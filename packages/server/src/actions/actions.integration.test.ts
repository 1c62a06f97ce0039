import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { generateDeviceUuid, generateKey, type ActionMessage } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { startServer } from '../server.js';

async function api(url: string, method: string, key: string, body?: unknown) {
  const response = await fetch(url, { method, headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, body: body === undefined ? null : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : undefined };
}

/** A device's side of the connection, honest to the protocol: answers every action, ok unless told to fail. */
function connectDevice(url: string, uuid: string, key: string, answer: (m: ActionMessage) => { ok: boolean; error?: { code: string; message: string } } = () => ({ ok: true })) {
  const received: ActionMessage[] = [];
  const socket = new WebSocket(`${url.replace('http', 'ws')}/device/v1/${uuid}/connect`, { headers: { authorization: `Bearer ${key}` } });
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as ActionMessage;
    received.push(message);
    socket.send(JSON.stringify({ type: 'action-result', id: message.id, ...answer(message) }));
  });
  const opened = new Promise<void>((resolve, reject) => {
    socket.on('open', () => resolve());
    socket.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    socket.on('error', reject);
  });
  return { received, opened, close: () => socket.close() };
}

for (const db of testDatabases()) {
  test(`[${db.label}] actions reach an online device within a second, and an offline one when it reconnects`, async () => {
    const created = await db.create();
    const server = await startServer({ host: '127.0.0.1', port: 0, ...(created.url ? { databaseUrl: created.url } : {}) });
    const key = server.admin!.apiKey;
    try {
      const slug = `act${Date.now()}`;
      const fleet = await api(`${server.url}/api/v1/fleets`, 'POST', key, { name: slug, slug });
      const pk = await api(`${server.url}/api/v1/fleets/${slug}/provisioning-keys`, 'POST', key, {});
      const uuid = generateDeviceUuid();
      const deviceKey = generateKey();
      await api(`${server.url}/device/register`, 'POST', pk.data.key, { application: fleet.data.id, uuid, device_type: 'generic-amd64', api_key: deviceKey });

      // Offline: queued, delivered on connect, in order; an expired one is not delivered.
      const queued = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'identify' });
      assert.equal(queued.status, 201);
      assert.equal(queued.data.status, 'pending');
      await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'restart-service', service: 'main' });
      const expiring = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'reboot', ttlSeconds: 1 });
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const device = connectDevice(server.url, uuid, deviceKey, (m) => (m.action === 'restart-service' ? { ok: false, error: { code: 'UPDATE_LOCKED', message: 'lock held' } } : { ok: true }));
      await device.opened;
      await waitFor('queued actions delivered', () => device.received.length >= 2, { timeoutMs: 5_000 });
      assert.deepEqual(device.received.map((m) => m.action), ['identify', 'restart-service']);
      assert.equal(device.received[1]!.service, 'main');
      await waitFor('results recorded', async () => {
        const list = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'GET', key);
        return list.data.items.filter((a: { status: string }) => a.status === 'done' || a.status === 'failed').length === 2 ? list : undefined;
      });
      const failed = await api(`${server.url}/api/v1/devices/${uuid}/actions/${queued.data.id + 1}`, 'GET', key);
      assert.deepEqual([failed.data.status, failed.data.error.code], ['failed', 'UPDATE_LOCKED']);
      assert.equal((await api(`${server.url}/api/v1/devices/${uuid}/actions/${expiring.data.id}`, 'GET', key)).data.status, 'expired');

      // Online: the answer comes back in the same request; measured here.
      const started = performance.now();
      const online = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'update' });
      const elapsed = performance.now() - started;
      assert.equal(online.data.status, 'done');
      assert.ok(elapsed < 1_000, `delivered and answered in ${elapsed.toFixed(1)} ms`);
      console.log(`# action round trip to an online device: ${elapsed.toFixed(1)} ms (${db.label})`);
      device.close();
    } finally {
      await server.close();
      await created.drop();
    }
  });

  test(`[${db.label}] the device connection refuses wrong keys, and users cannot act on others' devices`, async () => {
    const created = await db.create();
    const server = await startServer({ host: '127.0.0.1', port: 0, ...(created.url ? { databaseUrl: created.url } : {}) });
    const key = server.admin!.apiKey;
    try {
      const slug = `act${Date.now()}`;
      const fleet = await api(`${server.url}/api/v1/fleets`, 'POST', key, { name: slug, slug });
      const pk = await api(`${server.url}/api/v1/fleets/${slug}/provisioning-keys`, 'POST', key, {});
      const uuid = generateDeviceUuid();
      await api(`${server.url}/device/register`, 'POST', pk.data.key, { application: fleet.data.id, uuid, device_type: 'generic-amd64', api_key: generateKey() });
      await assert.rejects(connectDevice(server.url, uuid, generateKey()).opened, /401/);
      await assert.rejects(connectDevice(server.url, generateDeviceUuid(), generateKey()).opened, /401/);
      assert.equal((await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', 'wrong', { action: 'reboot' })).status, 401);
      const bad = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'explode' });
      assert.equal(bad.data.error.code, 'VALIDATION_FAILED');
      const noService = await api(`${server.url}/api/v1/devices/${uuid}/actions`, 'POST', key, { action: 'stop-service' });
      assert.equal(noService.data.error.code, 'VALIDATION_FAILED');
    } finally {
      await server.close();
      await created.drop();
    }
  });
}
