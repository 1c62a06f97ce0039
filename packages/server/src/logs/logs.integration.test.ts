import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateDeviceUuid, generateKey, type LogEntry } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import { followLogs as follow } from '../testing/clients.js';
import { liveServerWithDevice, postDeviceLogs as postLogs } from '../testing/live-server.js';

for (const db of testDatabases()) {
  test(`[${db.label}] device log stream is stored, tailed, and followed live in order`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, apiKey: key, uuid, deviceKey, api } = live;
    try {
      const first = [
        { message: 'booting', timestamp: 1_000, isSystem: true },
        { message: 'hello from main', timestamp: 1_001, serviceName: 'main' },
        { message: 'oops', timestamp: 1_002, serviceName: 'worker', isStdErr: true },
        'not a log line',
      ];
      assert.equal(await postLogs(server.url, uuid, deviceKey, first), 201);
      const tail = await api('GET', `/api/v1/devices/${uuid.slice(0, 7)}/logs?tail=10`);
      assert.deepEqual(
        tail.data.items.map((e: LogEntry) => e.message),
        ['booting', 'hello from main', 'oops'],
      );
      assert.equal(tail.data.items[2].isStdErr, true);
      const worker = await api('GET', `/api/v1/devices/${uuid}/logs?service=worker`);
      assert.deepEqual(
        worker.data.items.map((e: LogEntry) => e.message),
        ['oops'],
      );

      const seen: string[] = [];
      const stream = follow(`${server.url}/api/v1/devices/${uuid}/logs?follow=1&tail=1`, key, (e) =>
        seen.push(e.message),
      );
      await stream.ready;
      const lines = Array.from({ length: 20 }, (_, i) => ({
        message: `live ${i}`,
        timestamp: 2_000 + i,
        serviceName: 'main',
      }));
      assert.equal(await postLogs(server.url, uuid, deviceKey, lines.slice(0, 10)), 201);
      assert.equal(await postLogs(server.url, uuid, deviceKey, lines.slice(10)), 201);
      await waitFor('20 live lines', () => seen.length >= 21, { timeoutMs: 5_000 });
      stream.close();
      assert.deepEqual(seen, ['oops', ...lines.map((l) => l.message)], 'the tail, then every live line once, in order');
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] lines that carry only a serviceId (as balenaOS devices send them) get the service's name`, async () => {
    const live = await liveServerWithDevice(db);
    const { server, uuid, deviceKey, api, slug } = live;
    try {
      const image = (c: string) => `registry.example/app@sha256:${c.repeat(64)}`;
      const composition = { services: { main: { image: image('a') }, worker: { image: image('b') } } };
      const release = await api('POST', `/api/v1/fleets/${slug}/releases`, { composition, status: 'success' });
      assert.equal(release.status, 201, JSON.stringify(release.data));
      // The ids a device sees are the ones in its target state.
      const state = await api('GET', `/device/v3/${uuid}/state`, undefined, deviceKey);
      const releases = Object.values(
        state.data[uuid].apps as Record<
          string,
          { releases: Record<string, { services: Record<string, { id: number }> }> }
        >,
      )[0]!.releases;
      const services = Object.values(releases)[0]!.services;
      const main = services.main!.id;
      const worker = services.worker!.id;
      assert.notEqual(main, worker);

      const lines = [
        { message: 'by id', timestamp: 1_000, serviceId: main },
        { message: 'by id, stderr', timestamp: 1_001, serviceId: worker, isStdErr: true },
        { message: 'name wins', timestamp: 1_002, serviceId: main, serviceName: 'sidecar' },
        { message: 'unknown id', timestamp: 1_003, serviceId: 999_999 },
      ];
      assert.equal(await postLogs(server.url, uuid, deviceKey, lines), 201);
      const tail = await api('GET', `/api/v1/devices/${uuid}/logs?tail=10`);
      assert.deepEqual(
        tail.data.items.map((e: LogEntry) => [e.message, e.serviceName]),
        [
          ['by id', 'main'],
          ['by id, stderr', 'worker'],
          ['name wins', 'sidecar'],
          ['unknown id', null],
        ],
      );
      const onlyMain = await api('GET', `/api/v1/devices/${uuid}/logs?service=main`);
      assert.deepEqual(
        onlyMain.data.items.map((e: LogEntry) => e.message),
        ['by id'],
      );
    } finally {
      await live.close();
    }
  });

  test(`[${db.label}] logs: retention bounds storage; other devices' keys and other users are refused`, async () => {
    const live = await liveServerWithDevice(db, { logRetention: 50 });
    const { server, uuid, deviceKey, api } = live;
    try {
      const lines = Array.from({ length: 120 }, (_, i) => ({ message: `m${i}`, timestamp: i }));
      const seen: string[] = [];
      const stream = follow(`${server.url}/api/v1/devices/${uuid}/logs?follow=1&tail=0`, live.apiKey, (e) =>
        seen.push(e.message),
      );
      await stream.ready;
      assert.equal(await postLogs(server.url, uuid, deviceKey, lines.slice(0, 70)), 201);
      assert.equal(await postLogs(server.url, uuid, deviceKey, lines.slice(70)), 201);
      const all = await api('GET', `/api/v1/devices/${uuid}/logs?tail=1000`);
      assert.equal(all.data.items.length, 50);
      assert.equal(all.data.items[0].message, 'm70');
      assert.equal(all.data.items[49].message, 'm119');
      // Pruning waits for a tenth of the retention (5 lines) to come in: storage holds at most that many more lines
      // than are kept, and reads show only the newest 50.
      const { db } = server.app.flotilla;
      const storedLines = async () =>
        Number(
          (
            await db
              .selectFrom('device_logs')
              .innerJoin('devices', 'devices.id', 'device_logs.device_id')
              .where('devices.uuid', '=', uuid)
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      await waitFor('pruned to 50', async () => (await storedLines()) === 50, { timeoutMs: 5_000 });
      assert.equal(await postLogs(server.url, uuid, deviceKey, [{ message: 'extra 1', timestamp: 1 }]), 201);
      assert.equal(await storedLines(), 51);
      assert.equal((await api('GET', `/api/v1/devices/${uuid}/logs?tail=1000`)).data.items.length, 50);
      const four = Array.from({ length: 4 }, (_, i) => ({ message: `extra ${i + 2}`, timestamp: i }));
      assert.equal(await postLogs(server.url, uuid, deviceKey, four), 201);
      // In the background, once the post is answered.
      await waitFor('pruned once 5 lines came in', async () => (await storedLines()) === 50, { timeoutMs: 5_000 });
      await waitFor('every line live', () => seen.length >= 125, { timeoutMs: 5_000 });
      stream.close();
      assert.deepEqual(
        seen,
        [...lines.map((l) => l.message), 'extra 1', 'extra 2', 'extra 3', 'extra 4', 'extra 5'],
        'a follower sees every line, also of a batch larger than what is kept',
      );

      assert.equal(await postLogs(server.url, uuid, generateKey(), lines.slice(0, 1)), 401);
      assert.equal(await postLogs(server.url, generateDeviceUuid(), deviceKey, lines.slice(0, 1)), 401);
      assert.equal((await api('GET', `/api/v1/devices/${uuid}/logs`, undefined, 'not-a-key')).status, 401);
      const json = await fetch(`${server.url}/device/v2/${uuid}/log-stream`, {
        method: 'POST',
        headers: { authorization: `Bearer ${deviceKey}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(json.status, 415);
    } finally {
      await live.close();
    }
  });
}
