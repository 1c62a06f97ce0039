#!/usr/bin/env node
// Connection bench: BENCH_DEVICES (19,000) devices hold their WebSocket to one flotilla-server (SQLite, its own
// process), spread over child processes of at most 5,000 sockets, each from its own loopback source address
// (127.0.0.10, .11, …). Prints the server's RSS per connection (growth from before the devices connected, and the
// total over the count), its CPU while they all sit idle for BENCH_IDLE_SECONDS (30), and the time from a fleet-wide
// change (a fleet variable written through the user API) until every device was told `target-changed`. Then the
// same for a bare Node `ws` server holding the same connections (bench/lib/bare-ws-server.mjs): the limit, and the
// ratios. Needs a built tree (npx tsc -b).
import { fork } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { api, startServer } from './lib/control-plane.mjs';
import { assertNodeProcess, stopAll } from './lib/children.mjs';
import { measureIdle, memoryMb } from './lib/proc-sampler.mjs';

const root = new URL('..', import.meta.url).pathname;
const deviceCount = Number(process.env.BENCH_DEVICES ?? 19_000);
const idleSeconds = Number(process.env.BENCH_IDLE_SECONDS ?? 30);
const PER_CHILD = 5_000;
const hash = (key) => createHash('sha256').update(key).digest('hex');

/** Forks the device processes for `targets` ([{url, key}]); resolves once every socket is open (and greeted). */
async function connectAll(targets, greet) {
  const children = [];
  for (let i = 0; i * PER_CHILD < targets.length; i++) {
    const child = fork(join(root, 'bench/lib/connections-child.mjs'), {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.exited = new Promise((resolve) => child.once('exit', resolve));
    child.waitFor = (field) =>
      new Promise((resolve, reject) => {
        const on = (m) => {
          if (m[field] !== undefined) {
            child.off('message', on);
            resolve(m);
          }
        };
        child.on('message', on);
        child.exited.then((code) => reject(new Error(`device process exited ${code}`)));
      });
    const devices = targets.slice(i * PER_CHILD, (i + 1) * PER_CHILD);
    child.count = devices.length;
    const ready = Promise.all([child.waitFor('opened'), greet ? child.waitFor('greeted') : undefined]);
    child.send({ devices, localAddress: `127.0.0.${10 + i}`, greet });
    children.push({ child, ready });
  }
  await Promise.all(children.map((c) => c.ready));
  return children.map((c) => c.child);
}

/** Arms the device processes, runs `change`, and resolves with ms from just before it until the last device told. */
async function fanOut(children, change) {
  await Promise.all(
    children.map((c) => {
      c.send('arm');
      return c.waitFor('armed');
    }),
  );
  const t0 = Date.now();
  await change();
  const deadline = t0 + 60_000;
  for (;;) {
    const reports = await Promise.all(
      children.map((c) => {
        c.send('report');
        return c.waitFor('told');
      }),
    );
    if (reports.every((r, i) => r.told === children[i].count))
      return Math.max(...reports.map((r) => r.lastToldAt)) - t0;
    if (Date.now() > deadline) throw new Error(`not every device was told within 60 s: ${JSON.stringify(reports)}`);
    await sleep(20);
  }
}

async function measure(name, pid, targets, greet, change) {
  await sleep(2_000);
  const before = memoryMb(pid).rss;
  const t0 = performance.now();
  const children = await connectAll(targets, greet);
  const connectS = (performance.now() - t0) / 1000;
  await sleep(5_000);
  const after = memoryMb(pid).rss;
  const idle = await measureIdle(pid, idleSeconds);
  const fanOutMs = await fanOut(children, change);
  for (const c of children) c.send('close');
  const n = targets.length;
  const result = {
    name,
    connectS,
    rssMb: after,
    perConnectionKb: ((after - before) * 1024) / n,
    totalPerConnectionKb: (after * 1024) / n,
    idleCpu: idle.cpuPercent,
    fanOutMs,
  };
  console.log(
    `${name}: ${n} connections opened in ${connectS.toFixed(1)} s; RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB ` +
      `(${result.perConnectionKb.toFixed(2)} KB per connection grown, ${result.totalPerConnectionKb.toFixed(2)} KB total); ` +
      `idle CPU ${idle.cpuPercent.toFixed(2)} % of a core over ${idleSeconds} s; fleet-wide change to all in ${fanOutMs} ms`,
  );
  return result;
}

const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-connections-'));
const port = 20_000 + Math.floor(Math.random() * 20_000);
try {
  // ------------------------------------------------------------------------------------------------- Flotilla
  // Above the default cap of 10,000 connections (http/limits.ts): the devices, plus room for the user API calls.
  const server = await startServer(join(dir, 'data'), port, ['--max-connections', String(deviceCount + 100)]);
  assertNodeProcess(server.child.pid);
  const fleet = await api(server, 'POST', '/fleets', { name: 'bench', slug: 'bench-connections' });
  // Devices straight into the database (WAL: beside the running server), as registrations would have left them.
  const sqlite = new Database(join(dir, 'data', 'flotilla.db'));
  sqlite.pragma('busy_timeout = 5000');
  const insert = sqlite.prepare(
    `INSERT INTO devices (uuid, fleet_id, name, device_type, key_hash, revision, services_json, created_at) VALUES (?, ?, ?, 'generic-amd64', ?, 0, '{}', ?)`,
  );
  const at = new Date().toISOString();
  const targets = [];
  sqlite.transaction(() => {
    for (let i = 0; i < deviceCount; i++) {
      const uuid = randomBytes(16).toString('hex');
      const key = randomBytes(24).toString('base64url');
      insert.run(uuid, fleet.id, `device-${i}`, hash(key), at);
      targets.push({ url: `ws://127.0.0.1:${port}/device/v1/${uuid}/connect`, key });
    }
  })();
  sqlite.close();
  let value = 0;
  const flotilla = await measure('flotilla-server', server.child.pid, targets, true, () =>
    api(server, 'POST', '/fleets/bench-connections/env', { name: 'BENCH', value: String(++value) }),
  );
  await stopAll();

  // ------------------------------------------------------------------------------------------------ bare ws
  const bare = fork(join(root, 'bench/lib/bare-ws-server.mjs'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const barePort = await new Promise((resolve) => bare.once('message', (m) => resolve(m.port)));
    const bareTargets = targets.map(() => ({ url: `ws://127.0.0.1:${barePort}/` }));
    const limit = await measure('bare ws', bare.pid, bareTargets, false, async () => bare.send('broadcast'));
    const ratio = (a, b) => (b > 0 ? `${(a / b).toFixed(1)}×` : 'n/a');
    console.log(
      `ratio flotilla/bare: memory per connection ${ratio(flotilla.perConnectionKb, limit.perConnectionKb)} ` +
        `(total ${ratio(flotilla.totalPerConnectionKb, limit.totalPerConnectionKb)}), idle CPU ` +
        `${flotilla.idleCpu.toFixed(2)} % vs ${limit.idleCpu.toFixed(2)} %, fan-out ${ratio(flotilla.fanOutMs, limit.fanOutMs)}`,
    );
  } finally {
    bare.kill();
  }
} finally {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
