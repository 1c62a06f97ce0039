#!/usr/bin/env node
// Target-state poll bench: BENCH_DEVICES (100,000) devices in a SQLite database (BENCH_DATABASE=postgres: a fresh
// PostgreSQL database on FLOTILLA_TEST_POSTGRES_URL, e.g. `export FLOTILLA_TEST_POSTGRES_URL=$(bash
// scripts/postgres.sh)`), flotilla-server in its own process on loopback, simulated devices polling
// GET /device/v3/<uuid>/state over BENCH_CONCURRENCY (32) keep-alive connections:
//   first polls: every device polls once without an ETag (200: the state is computed and cached), bounded in time;
//   steady: random devices poll with the ETag they hold (304) for BENCH_SECONDS (20).
// Beside it, the limit under the identical load generator in the same run: a bare node:http server (bench/lib/
// bare-poll-server.mjs: sha256 of the key looked up in a Map, 304 or a small 200), and Flotilla's ratio to it. The
// two are measured in BENCH_ROUNDS (4) alternating slices, so both meet the same drift of the machine's load.
// Goals (issue 16): steady >= 80 % of the limit, first polls >= 50 %.
// BENCH_PROFILE=<dir> runs the server under `node --cpu-prof` and leaves the .cpuprofile there.
// Needs a built tree (npx tsc -b).
import { fork, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const root = new URL('..', import.meta.url).pathname;
const { openDatabase } = await import(join(root, 'packages/server/dist/index.js'));
const { createPostgresDatabase } = await import(join(root, 'packages/testkit/dist/databases.js'));
const deviceCount = Number(process.env.BENCH_DEVICES ?? 100_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const rounds = Number(process.env.BENCH_ROUNDS ?? 4);
const dialect = process.env.BENCH_DATABASE ?? 'sqlite';
const profileDir = process.env.BENCH_PROFILE;
const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-'));
const hash = (key) => createHash('sha256').update(key).digest('hex');

// ------------------------------------------------------------------------------------------------ seed the database
let postgres;
if (dialect === 'postgres') {
  const adminUrl = process.env.FLOTILLA_TEST_POSTGRES_URL;
  if (!adminUrl) throw new Error('BENCH_DATABASE=postgres needs FLOTILLA_TEST_POSTGRES_URL (bash scripts/postgres.sh)');
  postgres = await createPostgresDatabase(adminUrl);
} else if (dialect !== 'sqlite') throw new Error(`BENCH_DATABASE must be sqlite or postgres, not ${dialect}`);

const devices = [];
async function seed() {
  const t0 = performance.now();
  const { db, close } = await openDatabase(postgres ? { databaseUrl: postgres.url } : { dataDir: dir });
  const at = new Date().toISOString();
  await db.insertInto('organizations').values({ name: 'bench', handle: 'bench', created_at: at }).execute();
  await db
    .insertInto('users')
    .values({ username: 'bench', email: null, password_hash: null, created_at: at })
    .execute();
  const fleet = { organization_id: 1, name: 'bench', slug: 'bench', device_type: 'generic-amd64', revision: 0 };
  await db
    .insertInto('fleets')
    .values({ ...fleet, uuid: randomBytes(16).toString('hex'), pinned_release_id: null, created_at: at })
    .execute();
  const composition = {
    services: {
      web: {
        build: '.',
        restart: 'always',
        ports: ['80:80'],
        labels: { 'io.balena.update.strategy': 'download-then-kill' },
      },
      worker: { build: './worker', depends_on: ['web'], volumes: ['data:/data'] },
    },
    volumes: { data: null },
  };
  await db
    .insertInto('releases')
    .values({
      fleet_id: 1,
      commit: randomBytes(16).toString('hex'),
      version: '1.0.0',
      status: 'success',
      is_final: 1,
      composition_json: JSON.stringify(composition),
      notes: null,
      created_at: at,
    })
    .execute();
  for (const name of ['web', 'worker'])
    await db
      .insertInto('release_services')
      .values({ release_id: 1, name, image: `127.0.0.1/bench/${name}@sha256:${randomBytes(32).toString('hex')}` })
      .execute();
  await db
    .insertInto('env_vars')
    .values({ fleet_id: 1, device_id: null, service: null, name: 'MODE', value: 'bench', created_at: at })
    .execute();
  await db
    .insertInto('config_vars')
    .values({
      fleet_id: 1,
      device_id: null,
      key: 'SUPERVISOR_POLL_INTERVAL',
      name: 'BALENA_SUPERVISOR_POLL_INTERVAL',
      value: '900000',
      created_at: at,
    })
    .execute();
  for (let i = 0; i < deviceCount; i += 1_000) {
    const rows = [];
    for (let j = i; j < Math.min(deviceCount, i + 1_000); j++) {
      const device = { uuid: randomBytes(16).toString('hex'), key: randomBytes(24).toString('base64url'), etag: {} };
      devices.push(device);
      rows.push({
        uuid: device.uuid,
        fleet_id: 1,
        name: `device-${j}`,
        device_type: 'generic-amd64',
        key_hash: hash(device.key),
        revision: 0,
        services_json: '{}',
        created_at: at,
      });
    }
    await db.insertInto('devices').values(rows).execute();
  }
  await close();
  console.log(`seeded ${deviceCount} devices (${dialect}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------------- the servers
async function startFlotilla() {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const flags = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const child = spawn(
    process.execPath,
    [
      ...flags,
      join(root, 'packages/server/dist/main.js'),
      '--data',
      dir,
      ...(postgres ? ['--database', postgres.url] : []),
      '--port',
      String(port),
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line.includes('listening on')) resolve();
    });
  });
  return { name: 'flotilla', port, child };
}

async function startBare() {
  const child = fork(join(root, 'bench/lib/bare-poll-server.mjs'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const listening = new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`bare server exited ${code}`)));
  });
  for (let i = 0; i < devices.length; i += 10_000) {
    const slice = devices.slice(i, i + 10_000).map((d) => [d.uuid, hash(d.key)]);
    child.send({ devices: slice, last: i + 10_000 >= devices.length });
  }
  const { port } = await listening;
  return { name: 'bare node:http', port, child };
}

async function stopServer(server) {
  server.child.removeAllListeners('exit');
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
}

// ---------------------------------------------------------------------------------------------- the load generator
function poll(target, agent, device) {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${device.key}` };
    const etag = device.etag[target.name];
    if (etag) headers['if-none-match'] = etag;
    const started = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port: target.port, path: `/device/v3/${device.uuid}/state`, agent, headers },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          if (res.statusCode !== 200 && res.statusCode !== 304) return reject(new Error(`status ${res.statusCode}`));
          device.etag[target.name] = res.headers.etag;
          resolve({ ms: performance.now() - started, notModified: res.statusCode === 304 });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Polls from `concurrency` connections until `pick` runs out or `limitMs` is over; adds to `tally`. */
async function phase(target, pick, limitMs, tally) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const started = performance.now();
  const deadline = started + limitMs;
  let done = false;
  try {
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (!done && performance.now() < deadline) {
          const device = pick();
          if (!device) {
            done = true;
            break;
          }
          const r = await poll(target, agent, device);
          tally.latencies.push(r.ms);
          if (r.notModified) tally.notModified++;
        }
      }),
    );
  } finally {
    agent.destroy();
    tally.seconds += (performance.now() - started) / 1000;
  }
}

function figures(tally) {
  const sorted = tally.latencies.sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    polls: sorted.length,
    perSecond: sorted.length / tally.seconds,
    p50: q(0.5),
    p99: q(0.99),
    notModifiedPct: (100 * tally.notModified) / sorted.length,
  };
}

/**
 * First polls of every device (each server given 60 s at most), then steady polls by devices holding an ETag, in
 * `rounds` slices that alternate between the servers: the machine's load drifts (other jobs), and alternating in
 * short slices gives both the same share of it.
 */
async function measure(targets) {
  const tallies = targets.map(() => ({
    first: { latencies: [], notModified: 0, seconds: 0 },
    steady: { latencies: [], notModified: 0, seconds: 0 },
  }));
  const chunk = Math.ceil(devices.length / rounds);
  for (let round = 0; round < rounds; round++)
    for (const [i, target] of targets.entries()) {
      let next = round * chunk;
      const end = Math.min(devices.length, next + chunk);
      await phase(target, () => (next < end ? devices[next++] : undefined), 60_000 / rounds, tallies[i].first);
    }
  const known = devices.filter((d) => targets.every((t) => d.etag[t.name]));
  for (let round = 0; round < rounds; round++)
    for (const [i, target] of targets.entries())
      await phase(
        target,
        () => known[Math.floor(Math.random() * known.length)],
        (seconds * 1000) / rounds,
        tallies[i].steady,
      );
  return targets.map((target, i) => {
    const out = { first: figures(tallies[i].first), steady: figures(tallies[i].steady) };
    for (const name of ['first', 'steady']) {
      const r = out[name];
      console.log(
        `${target.name.padEnd(15)} ${name.padEnd(6)}: ${r.polls} polls = ${Math.round(r.perSecond)} polls/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, 304 ${r.notModifiedPct.toFixed(1)} %`,
      );
    }
    return out;
  });
}

const started = [];
try {
  await seed();
  const flotillaServer = await startFlotilla();
  started.push(flotillaServer);
  const bareServer = await startBare();
  started.push(bareServer);
  const [flotilla, bare] = await measure([flotillaServer, bareServer]);
  const metrics = await (await fetch(`http://127.0.0.1:${flotillaServer.port}/metrics`)).text();
  console.log(
    metrics
      .split('\n')
      .filter((l) => /^flotilla_(target_state|poll)_cache_total/.test(l))
      .join('\n'),
  );
  console.log(
    `\nFlotilla (${dialect}) / bare node:http, ${deviceCount} devices, ${concurrency} connections, ${rounds} alternating rounds:`,
  );
  for (const name of ['first', 'steady']) {
    const f = flotilla[name];
    const b = bare[name];
    console.log(
      `  ${name.padEnd(6)}: ${Math.round(f.perSecond)} / ${Math.round(b.perSecond)} polls/s = ${((100 * f.perSecond) / b.perSecond).toFixed(0)} % of the limit (goal ${name === 'first' ? 50 : 80} %); p99 ${f.p99.toFixed(2)} / ${b.p99.toFixed(2)} ms`,
    );
  }
} finally {
  for (const server of started) await stopServer(server);
  await postgres?.drop();
  rmSync(dir, { recursive: true, force: true });
}
