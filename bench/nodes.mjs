#!/usr/bin/env node
// Several-nodes bench (scale issue 16): two flotilla-server processes (separate ports, each its own data folder) over
// one PostgreSQL database (FLOTILLA_TEST_POSTGRES_URL, `bash scripts/postgres.sh`; a database of its own), and
// BENCH_DEVICES (40,000) simulated devices (bench/lib/fleet-device.mjs: the real device protocol) in processes of at
// most 5,000, each from its own loopback source address, half registered with and connected to each node.
// Devices are written to the database by the bench, as registrations would have left them (uuid, fleet, name, type,
// key hash: one multi-row INSERT per 5,000), then each fetches its target and opens its WebSocket, 50 at once per
// process; BENCH_REGISTER=api registers each through the real POST /device/register instead (20 at once per process,
// both nodes at once: about 50 a second on this loaded 2-core machine, so 13 minutes for 39,000).
//
// 1. Deploy: a release created through node A's user API (status success, so it becomes the fleet's target). Prints
//    the time from just before that call until each connected device received `target-changed` (p50/p99/max, per
//    node, and how many were reached), and until each had fetched the new target.
// 2. Node loss: devices are powered off down to BENCH_FAILOVER_DEVICES (19,000; the one node left must hold them all
//    within its open-file limit), half on each node; BENCH_ACTIONS (2,000) `identify` actions go to devices on node A
//    through both nodes' APIs (a node killed mid-request takes its requests down with it, as it would behind a load
//    balancer; after the kill they go to node B); node A is killed -9 once half are issued. Each device dials the
//    other node after the agent's backoff (1 s · 2^n, capped at 60 s: packages/agent control-plane/connection.ts).
//    Prints how long node A's devices took to be connected to node B (and how many connections the host's accept
//    queues dropped meanwhile), and the state of every action, through node B's API, checked against what the devices
//    received: none may be lost.
// Prints both nodes' RSS and CPU. Needs a built tree (npx tsc -b). Run it under the bench lock:
// `flock /tmp/bench.lock node bench/nodes.mjs`.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFleet } from './fleet-sim.mjs';
import { assertAlive, assertNodeProcess, launch, stopAll, waitUntil } from './lib/children.mjs';
import { api, startServer } from './lib/control-plane.mjs';
import { cpuTicks, memoryMb, summarize } from './lib/proc-sampler.mjs';

const deviceCount = Number(process.env.BENCH_DEVICES ?? 40_000);
const failoverCount = Math.min(deviceCount, Number(process.env.BENCH_FAILOVER_DEVICES ?? 19_000));
const actionCount = Number(process.env.BENCH_ACTIONS ?? 2_000);
const registerThroughApi = process.env.BENCH_REGISTER === 'api';
const PER_PROCESS = 5_000;
/** HTTP keep-alive connections of each device process to its node: each is an open file on the node too. */
const HTTP_SOCKETS = 16;
/** Open files a node keeps beside device connections: its own at start (measured) plus the database pool (10, db/database.ts), user API calls and headroom. */
const NODE_SPARE_FILES = 10 + 64 + 50;
/** The agent's (packages/agent control-plane/connection.ts): backoff and opening-handshake timeout. */
const BACKOFF = { baseMs: 1_000, maxMs: 60_000, handshakeMs: 15_000 };
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

const adminUrl = process.env.FLOTILLA_TEST_POSTGRES_URL;
if (!adminUrl) throw new Error('needs FLOTILLA_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)');

const ms = (v) => `${v.toFixed(0)} ms`;
function latencies(values) {
  if (values.length === 0) return 'none';
  const { median, p99, max } = summarize(values);
  return `p50 ${ms(median)}, p99 ${ms(p99)}, max ${ms(max)}`;
}
/** The host's count of connections dropped because a listen backlog was full (/proc/net/netstat). */
function listenOverflows() {
  const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n');
  const header = lines.findIndex((l) => l.startsWith('TcpExt:'));
  const names = lines[header].split(/\s+/);
  const values = lines[header + 1].split(/\s+/);
  return Number(values[names.indexOf('ListenOverflows')]);
}
function hardOpenFileLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const hard = line?.split(/\s+/)[4];
  return hard === 'unlimited' ? Number.POSITIVE_INFINITY : Number(hard);
}
const openFiles = (pid) => readdirSync(`/proc/${pid}/fd`).length;
/** A node's own count of device connections (its /metrics gauge). */
async function connectionsOf(node) {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(/^flotilla_device_connections (\d+)/m.exec(text)?.[1] ?? NaN);
}
/** CPU % of one core `pid` used since `since` ({ticks, at}); `cpuMark(pid)` makes one. */
const cpuMark = (pid) => ({ ticks: cpuTicks(pid), at: performance.now() });
const cpuSince = (pid, since) =>
  (100 * (cpuTicks(pid) - since.ticks)) / TICKS_PER_SECOND / ((performance.now() - since.at) / 1000);
const footprint = (node) =>
  `RSS ${memoryMb(node.child.pid).rss.toFixed(0)} MB, ${openFiles(node.child.pid)} open files`;

const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-nodes-'));
const { createPostgresDatabase } = await import('../packages/testkit/dist/databases.js');
const postgres = await createPostgresDatabase(adminUrl);
const fleets = [];
try {
  const base = 20_000 + Math.floor(Math.random() * 20_000);
  // Above the default cap of 10,000 (http/limits.ts): a node's devices, or all of them once the other is gone.
  const maxConnections = String(Math.max(Math.ceil(deviceCount / 2), failoverCount) + 1_000);
  const common = ['--database', postgres.url, '--max-connections', maxConnections];
  const a = await startServer(join(dir, 'a'), base, [...common, '--node-url', `http://127.0.0.1:${base}`]);
  a.name = 'A';
  assertNodeProcess(a.child.pid);
  // Node B: same database (so no first-start admin line), its own data folder and port; the user API key is shared.
  const b = { name: 'B', url: `http://127.0.0.1:${base + 1}`, apiKey: a.apiKey };
  b.child = launch('flotilla-server', [
    '--data',
    join(dir, 'b'),
    '--port',
    String(base + 1),
    '--public-url',
    b.url,
    '--node-url',
    b.url,
    '--log-level',
    'warn',
    ...common,
  ]);
  await waitUntil(`${b.url}/healthz`, async () => (await fetch(`${b.url}/healthz`)).ok, {
    alive: () => assertAlive(b.child, 'flotilla-server B'),
  });
  assertNodeProcess(b.child.pid);

  // ------------------------------------------------------------------------------------ does it fit at all
  const processes = Math.ceil(deviceCount / PER_PROCESS);
  const hard = hardOpenFileLimit();
  const perNode = Math.ceil(deviceCount / 2);
  const needed = perNode + openFiles(a.child.pid) + Math.ceil(processes / 2) * HTTP_SOCKETS + NODE_SPARE_FILES;
  const survivorNeeds = failoverCount + openFiles(b.child.pid) + processes * HTTP_SOCKETS + NODE_SPARE_FILES;
  console.log(
    `open files: hard limit ${hard} a process; a node needs ${needed} for ${perNode} devices ` +
      `(${openFiles(a.child.pid)} its own at start, ${Math.ceil(processes / 2) * HTTP_SOCKETS} device HTTP keep-alive, ` +
      `${NODE_SPARE_FILES} database pool, user API and headroom); after the loss of one, the other needs ${survivorNeeds} for ${failoverCount}`,
  );
  if (needed > hard || survivorNeeds > hard) {
    const fits = 2 * (hard - (needed - perNode));
    throw new Error(
      `does not fit: the open-file limit binds (${needed} or ${survivorNeeds} > ${hard}); BENCH_DEVICES up to about ${fits} ` +
        `and BENCH_FAILOVER_DEVICES up to about ${hard - (survivorNeeds - failoverCount)} fit`,
    );
  }

  // ---------------------------------------------------------------------------------- fleet and devices
  const fleet = await api(a, 'POST', '/fleets', { name: 'bench', slug: 'bench-nodes' });
  const { key } = await api(a, 'POST', '/fleets/bench-nodes/provisioning-keys', { name: 'bench' });
  const composition = { services: { main: { image: 'busybox' } } };
  await api(a, 'POST', '/fleets/bench-nodes/releases', { composition, status: 'success' });
  // The bench's own registrations: the columns POST /device/register writes (device-api/register.ts).
  const seed = async (count) => {
    if (registerThroughApi) return undefined;
    const devices = Array.from({ length: count }, () => ({
      uuid: randomBytes(16).toString('hex'),
      key: randomBytes(24).toString('base64url'),
    }));
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      for (let i = 0; i < count; i += 5_000) {
        const rows = devices.slice(i, i + 5_000);
        await client.query(
          `INSERT INTO devices (uuid, fleet_id, name, device_type, key_hash, revision, services_json, created_at)
           SELECT u, $1, 'bench-' || u, 'generic-amd64', k, 0, '{}', $2 FROM unnest($3::text[], $4::text[]) AS t(u, k)`,
          [
            fleet.id,
            new Date().toISOString(),
            rows.map((d) => d.uuid),
            rows.map((d) => createHash('sha256').update(d.key).digest('hex')),
          ],
        );
      }
    } finally {
      await client.end();
    }
    return devices;
  };
  const half = async (node, other, count, firstAddress) =>
    startFleet({
      devices: await seed(count),
      url: node.url,
      fleetId: fleet.id,
      provisioningKey: key,
      count,
      perProcess: PER_PROCESS,
      firstAddress,
      connect: true,
      maxSockets: HTTP_SOCKETS,
      failover: { urls: [node.url, other.url], ...BACKOFF },
    });
  const countA = Math.ceil(deviceCount / 2);
  const countB = deviceCount - countA;
  const t0 = performance.now();
  const [fleetA, fleetB] = await Promise.all([
    half(a, b, countA, 10),
    half(b, a, countB, 10 + Math.ceil(countA / PER_PROCESS)),
  ]);
  fleets.push(fleetA, fleetB);
  const registerS = (performance.now() - t0) / 1000;
  await sleep(5_000);
  const [heldA, heldB] = await Promise.all([connectionsOf(a), connectionsOf(b)]);
  console.log(
    `${deviceCount} devices registered (${registerThroughApi ? `API, ${processes} processes × 20 at once` : 'written to the database'}), fetched their target and connected ` +
      `in ${registerS.toFixed(1)} s (${(deviceCount / registerS).toFixed(0)}/s); node A holds ${heldA}, node B ${heldB}; ` +
      `A ${footprint(a)}, B ${footprint(b)}; load average ${loadavg()[0].toFixed(1)}`,
  );
  if (heldA !== countA || heldB !== countB) throw new Error(`expected ${countA} + ${countB} connections`);
  const idle = [cpuMark(a.child.pid), cpuMark(b.child.pid)];
  await sleep(10_000);
  console.log(
    `idle 10 s: CPU node A ${cpuSince(a.child.pid, idle[0]).toFixed(1)} %, node B ${cpuSince(b.child.pid, idle[1]).toFixed(1)} % of a core`,
  );

  // ------------------------------------------------------------------------------------------ 1. deploy
  const cpu = [cpuMark(a.child.pid), cpuMark(b.child.pid)];
  const deployAt = Date.now();
  const release = await api(a, 'POST', '/fleets/bench-nodes/releases', { composition, status: 'success' });
  const answeredMs = Date.now() - deployAt;
  const toldOf = async (f) => (await f.query('told', 'told')).flatMap((m) => m.told.map((t, i) => [t, m.fetched[i]]));
  let told;
  const deadline = Date.now() + 120_000;
  for (;;) {
    told = await Promise.all([toldOf(fleetA), toldOf(fleetB)]);
    const fetched = told.flat().filter(([, f]) => f !== null && f >= deployAt).length;
    if (fetched === deviceCount || Date.now() > deadline) break;
    await sleep(100);
  }
  const cpuDeploy = [cpuSince(a.child.pid, cpu[0]), cpuSince(b.child.pid, cpu[1])];
  const toldMs = told.map((side) => side.filter(([t]) => t !== null && t >= deployAt).map(([t]) => t - deployAt));
  const fetchedMs = told
    .flat()
    .filter(([, f]) => f !== null && f >= deployAt)
    .map(([, f]) => f - deployAt);
  const all = toldMs.flat();
  console.log(
    `\n1. deploy (release ${release.commit.slice(0, 7)} through node A's API, answered in ${answeredMs} ms): ` +
      `told ${all.length} of ${deviceCount} connected devices: ${latencies(all)}` +
      `\n   devices on node A: ${toldMs[0].length}, ${latencies(toldMs[0])}; on node B (told through PostgreSQL NOTIFY): ${toldMs[1].length}, ${latencies(toldMs[1])}` +
      `\n   every device fetched the new target: ${fetchedMs.length} of ${deviceCount}, ${latencies(fetchedMs)}` +
      `\n   CPU from the deploy until the last fetch: node A ${cpuDeploy[0].toFixed(0)} %, node B ${cpuDeploy[1].toFixed(0)} % of a core; ` +
      `A ${footprint(a)}, B ${footprint(b)}; load average ${loadavg()[0].toFixed(1)}`,
  );

  // --------------------------------------------------------------------------------------- 2. node loss
  // Power off devices down to what one node can hold, the same share on each node and in each process.
  const powerOff = async (f, count, keep) => {
    const procs = Math.ceil(count / PER_PROCESS);
    const share = (n, i) => Math.floor(n / procs) + (i < n % procs ? 1 : 0);
    const answers = await f.query((i) => ({ powerOff: share(count, i) - share(keep, i) }), 'poweredOff');
    return answers.flatMap((m) => m.uuids);
  };
  const keepA = Math.ceil(failoverCount / 2);
  const [uuidsA] = await Promise.all([
    powerOff(fleetA, countA, keepA),
    powerOff(fleetB, countB, failoverCount - keepA),
  ]);
  await waitUntil(
    'the powered-off devices gone from both nodes',
    async () => (await connectionsOf(a)) + (await connectionsOf(b)) === failoverCount,
  );
  await sleep(3_000);
  const targets = uuidsA.slice(0, actionCount);
  console.log(
    `\n2. node loss: ${keepA} devices on node A, ${failoverCount - keepA} on node B; ${targets.length} actions to devices on A; ` +
      `A ${footprint(a)}, B ${footprint(b)}`,
  );
  const issued = [];
  let killedAt;
  let next = 0;
  const cpuB = cpuMark(b.child.pid);
  const overflowsBefore = listenOverflows();
  await Promise.all(
    Array.from({ length: 32 }, async (_, worker) => {
      for (let i = next++; i < targets.length; i = next++) {
        if (killedAt === undefined && i >= targets.length / 2) {
          killedAt = Date.now();
          a.child.kill('SIGKILL');
          console.log(`   node A killed -9 with ${i} actions asked for`);
        }
        // Through both nodes until the kill (a node's requests in flight go down with it); then through B alone.
        const node = killedAt === undefined && worker % 2 === 0 ? a : b;
        const record = { uuid: targets[i], via: node.name };
        try {
          record.answer = await api(node, 'POST', `/devices/${targets[i]}/actions?wait=5000`, { action: 'identify' });
        } catch (error) {
          record.error = error.cause?.code ?? error.message;
        }
        issued.push(record);
      }
    }),
  );
  const issuedS = (Date.now() - killedAt) / 1000;

  // Node A's devices, each on node B once its backoff let it.
  let connections;
  await waitUntil(
    "node A's devices connected to node B",
    async () => {
      connections = (await fleetA.query('connections', 'connections')).flatMap((m) => m.connections);
      return connections.every((c) => c.reconnectedAt !== undefined && c.node === 1);
    },
    { timeoutMs: 180_000, intervalMs: 250 },
  );
  const cpuFailover = cpuSince(b.child.pid, cpuB);
  const overflows = listenOverflows() - overflowsBefore;
  const since = connections.map((c) => c.reconnectedAt - killedAt);
  const gaps = connections.map((c) => c.reconnectedAt - c.disconnectedAt);
  const dials = new Map();
  for (const c of connections) dials.set(c.redials, (dials.get(c.redials) ?? 0) + 1);
  const dialErrors = new Map();
  for (const e of connections.flatMap((c) => c.dialErrors)) dialErrors.set(e, (dialErrors.get(e) ?? 0) + 1);
  console.log(
    `   ${connections.length} of node A's devices on node B: since the kill ${latencies(since)}; ` +
      `each from its own drop ${latencies(gaps)}; dials per device ${[...dials]
        .sort((x, y) => x[0] - y[0])
        .map(([n, c]) => `${n}: ${c}`)
        .join(', ')}` +
      `\n   failed dials: ${[...dialErrors].map(([e, n]) => `${e} ×${n}`).join('; ') || 'none'}` +
      `\n   (agent backoff: first dial ${BACKOFF.baseMs} ms after the drop, doubling, capped at ${BACKOFF.maxMs} ms, each delay jittered over its upper half; handshake timeout ${BACKOFF.handshakeMs} ms)` +
      `\n   connections the host's accept queues overflowed with meanwhile (TcpExt ListenOverflows): ${overflows}` +
      `\n   node B holds ${await connectionsOf(b)}; B ${footprint(b)}; CPU of B from the kill until all were back ${cpuFailover.toFixed(0)} % of a core; ` +
      `load average ${loadavg()[0].toFixed(1)}`,
  );

  // Every action: its state through node B's API, checked against what the devices received.
  await sleep(5_000);
  const received = new Map();
  for (const m of await fleetA.query('actions', 'actions'))
    for (const [uuid, ids] of Object.entries(m.actions)) received.set(uuid, ids);
  const states = new Map();
  const lost = [];
  let duplicates = 0;
  let answerLost = 0;
  let orphaned = 0;
  let queue = [...new Set(targets)];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let uuid = queue.pop(); uuid; uuid = queue.pop()) {
        const { items } = await api(b, 'GET', `/devices/${uuid}/actions`);
        const got = received.get(uuid) ?? [];
        if (new Set(got).size !== got.length) duplicates += 1;
        for (const action of items) {
          states.set(action.status, (states.get(action.status) ?? 0) + 1);
          const reached = got.includes(action.id);
          // Settled failed on reconnect (actions.ts failOrphanedActions): reported, so not lost; told apart by
          // whether it had reached the device.
          if (action.status === 'failed' && action.error?.code === 'NETWORK_ERROR' && !reached) orphaned += 1;
          if ((action.status === 'delivered' || action.status === 'failed') && reached) answerLost += 1;
          else if (action.status === 'pending' || action.status === 'expired' || action.status === 'delivered')
            lost.push({ uuid, ...action, reached });
        }
        const answered = issued.filter((r) => r.uuid === uuid && r.answer);
        for (const r of answered)
          if (!items.some((x) => x.id === r.answer.id)) lost.push({ uuid, id: r.answer.id, status: 'missing' });
      }
    }),
  );
  queue = [];
  const errors = new Map();
  for (const r of issued.filter((x) => x.error))
    errors.set(`${r.via}: ${r.error}`, (errors.get(`${r.via}: ${r.error}`) ?? 0) + 1);
  const answers = new Map();
  for (const r of issued.filter((x) => x.answer)) answers.set(r.answer.status, (answers.get(r.answer.status) ?? 0) + 1);
  const show = (map) => [...map].map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  console.log(
    `   ${issued.length} actions asked for in ${issuedS.toFixed(1)} s after the kill; answers: ${show(answers)}; failed requests: ${show(errors)}` +
      `\n   recorded (node B's API, ${states.size ? [...states.values()].reduce((x, y) => x + y) : 0} actions): ${show(states)}` +
      `\n   reached the device but its answer went down with node A: ${answerLost}; claimed by node A but never reached the device, reported failed: ${orphaned}; received twice: ${duplicates} devices` +
      `\n   LOST (pending, or delivered without reaching the device, or missing): ${lost.length}${lost.length ? ` e.g. ${JSON.stringify(lost.slice(0, 3))}` : ''}`,
  );
  console.log(
    `\nload average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
} finally {
  for (const f of fleets) await f.close();
  await stopAll();
  await postgres.drop();
  rmSync(dir, { recursive: true, force: true });
}
