#!/usr/bin/env node
// Target-state poll bench: 100,000 devices in a SQLite database, flotilla-server in its own process on loopback,
// simulated devices polling GET /device/v3/<uuid>/state with If-None-Match over keep-alive connections.
//   phase 1 (warm-up): every device polls once without an ETag (200, computes and caches its state), bounded in time;
//   phase 2 (steady): random devices poll with the ETag they hold for BENCH_SECONDS (default 20).
// Prints polls/s, p50/p99 latency and % 304 for both phases. Target (steady): >= 5,000 polls/s at p99 < 20 ms.
//   BENCH_DEVICES (100000), BENCH_CONCURRENCY (32), BENCH_SECONDS (20). Needs a built tree (npx tsc -b).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';

const root = new URL('..', import.meta.url).pathname;
const { openDatabase } = await import(join(root, 'packages/server/dist/index.js'));
const deviceCount = Number(process.env.BENCH_DEVICES ?? 100_000);
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 32);
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-'));
const hash = (key) => createHash('sha256').update(key).digest('hex');

// ------------------------------------------------------------------------------------------------ seed the database
const t0 = performance.now();
const opened = await openDatabase({ dataDir: dir });
await opened.close();
const sqlite = new Database(join(dir, 'flotilla.db'));
const at = new Date().toISOString();
sqlite.prepare(`INSERT INTO organizations (name, handle, created_at) VALUES ('bench', 'bench', ?)`).run(at);
sqlite
  .prepare(`INSERT INTO users (username, email, password_hash, created_at) VALUES ('bench', NULL, NULL, ?)`)
  .run(at);
sqlite
  .prepare(
    `INSERT INTO fleets (uuid, organization_id, name, slug, device_type, pinned_release_id, revision, created_at) VALUES (?, 1, 'bench', 'bench', 'generic-amd64', NULL, 0, ?)`,
  )
  .run(randomBytes(16).toString('hex'), at);
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
sqlite
  .prepare(
    `INSERT INTO releases (fleet_id, "commit", version, status, is_final, composition_json, notes, created_at) VALUES (1, ?, '1.0.0', 'success', 1, ?, NULL, ?)`,
  )
  .run(randomBytes(16).toString('hex'), JSON.stringify(composition), at);
for (const name of ['web', 'worker'])
  sqlite
    .prepare(`INSERT INTO release_services (release_id, name, image) VALUES (1, ?, ?)`)
    .run(name, `127.0.0.1/bench/${name}@sha256:${randomBytes(32).toString('hex')}`);
sqlite
  .prepare(
    `INSERT INTO env_vars (fleet_id, device_id, service, name, value, created_at) VALUES (1, NULL, NULL, 'MODE', 'bench', ?)`,
  )
  .run(at);
sqlite
  .prepare(
    `INSERT INTO config_vars (fleet_id, device_id, key, name, value, created_at) VALUES (1, NULL, 'SUPERVISOR_POLL_INTERVAL', 'BALENA_SUPERVISOR_POLL_INTERVAL', '900000', ?)`,
  )
  .run(at);
const devices = [];
const insert = sqlite.prepare(
  `INSERT INTO devices (uuid, fleet_id, name, device_type, key_hash, revision, services_json, created_at) VALUES (?, 1, ?, 'generic-amd64', ?, 0, '{}', ?)`,
);
sqlite.transaction(() => {
  for (let i = 0; i < deviceCount; i++) {
    const uuid = randomBytes(16).toString('hex');
    const key = randomBytes(24).toString('base64url');
    insert.run(uuid, `device-${i}`, hash(key), at);
    devices.push({ uuid, key, etag: undefined });
  }
})();
sqlite.close();
console.log(`seeded ${deviceCount} devices in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

// ---------------------------------------------------------------------------------------------------- the server
const port = 20_000 + Math.floor(Math.random() * 20_000);
const server = spawn(
  process.execPath,
  [join(root, 'packages/server/dist/main.js'), '--data', dir, '--port', String(port), '--log-level', 'warn'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
await new Promise((resolve, reject) => {
  server.on('exit', (code) => reject(new Error(`server exited ${code}`)));
  createInterface({ input: server.stdout }).on('line', (line) => {
    if (line.includes('listening on')) resolve();
  });
});

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
function poll(device) {
  return new Promise((resolve, reject) => {
    const headers = { authorization: `Bearer ${device.key}` };
    if (device.etag) headers['if-none-match'] = device.etag;
    const started = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port, path: `/device/v3/${device.uuid}/state`, agent, headers },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          if (res.statusCode !== 200 && res.statusCode !== 304) return reject(new Error(`status ${res.statusCode}`));
          device.etag = res.headers.etag;
          resolve({ ms: performance.now() - started, notModified: res.statusCode === 304 });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function phase(name, pick, limitMs) {
  const latencies = [];
  let notModified = 0;
  const started = performance.now();
  const deadline = started + limitMs;
  let done = false;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!done && performance.now() < deadline) {
        const device = pick();
        if (!device) {
          done = true;
          break;
        }
        const r = await poll(device);
        latencies.push(r.ms);
        if (r.notModified) notModified++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))].toFixed(2);
  console.log(
    `${name}: ${latencies.length} polls in ${elapsed.toFixed(1)} s = ${Math.round(latencies.length / elapsed)} polls/s, p50 ${q(0.5)} ms, p99 ${q(0.99)} ms, 304 ${((100 * notModified) / latencies.length).toFixed(1)} %`,
  );
}

try {
  let next = 0;
  await phase('warm-up (first poll of each device, no ETag)', () => devices[next++], 60_000);
  const known = devices.filter((d) => d.etag);
  await phase(
    `steady (${known.length} devices holding an ETag, ${concurrency} connections, ${seconds} s)`,
    () => known[Math.floor(Math.random() * known.length)],
    seconds * 1000,
  );
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  console.log(
    metrics
      .split('\n')
      .filter((l) => l.startsWith('flotilla_target_state_cache_total'))
      .join('\n'),
  );
} finally {
  agent.destroy();
  server.removeAllListeners('exit');
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
}
