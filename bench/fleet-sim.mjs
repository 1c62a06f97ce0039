#!/usr/bin/env node
// Fleet simulator: devices speaking the real device protocol (bench/lib/fleet-device.mjs: register with a
// provisioning key, poll with ETag, report state, ship logs, hold the WebSocket, answer actions), spread over child
// processes of at most `perProcess` devices, each process from its own loopback source address (127.0.0.10, .11, …)
// so neither the per-process open-file cap nor a source address's ephemeral ports bind.
//
// As a module, other benches use startFleet(). Run as a program, it is the "reports and logs at fleet scale" bench
// (issue 16): flotilla-server (SQLite, or BENCH_DATABASE=postgres on FLOTILLA_TEST_POSTGRES_URL; its own process) with BENCH_REPORTERS (1,000) devices each reporting state
// every BENCH_REPORT_EVERY_S (6) s — 167 reports/s, the rate of 100,000 devices reporting every 10 minutes — and
// BENCH_LOGGERS (2,000) devices each posting 5 log lines every second (10,000 lines/s), for BENCH_SECONDS (30).
// Prints the achieved rates, p50/p99 latency of reports and log posts, errors, and whether every line accepted was
// stored (counted back through the user API). The server runs with bench/lib/fleet-server-probe.mjs preloaded, which
// measures from inside it the same requests' time in the server, its event loop's delay and GC pauses, printed beside
// what the devices observed; the simulator processes report their own event loop's delay. BENCH_PROFILE=<dir> runs
// the server under the CPU profiler for the measured window and leaves the .cpuprofile there. Needs a built tree (npx tsc -b).
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { measureIdle, summarize } from './lib/proc-sampler.mjs';

const here = new URL('.', import.meta.url).pathname;

/** How long a child may take to answer a step before the fleet gives up on it. */
const STEP_TIMEOUT_MS = 30 * 60_000;

/**
 * Starts `count` simulated devices registered in fleet `fleetId` of the server at `url` with `provisioningKey`.
 * Rhythms (0 = never): reportEveryMs, pollEveryMs, logEveryMs (posting `logLines` lines each time). `connect`: each
 * device polls once and holds its WebSocket. Resolves once every device is registered (and connected), to
 * {uuids, go(), stop() -> merged stats, query(), close()}; `firstAddress` is the last byte of the first 127.0.0.x.
 * `failover` ({urls, baseMs, maxMs}, see FleetDevice.connect): connected devices dial the next node when theirs
 * goes. `maxSockets`: HTTP keep-alive connections of each process to the server (each is an open file there).
 * `devices` ([{uuid, key}], `count` of them): devices already registered (e.g. written to the database by the
 * bench), which then only fetch their target and connect.
 * query(message, field) asks every process (fleet-sim-child.mjs lists the queries; `message` may be a function of
 * the process index) and resolves to their answers, in process order.
 */
export async function startFleet({
  url,
  fleetId,
  provisioningKey,
  count,
  perProcess = 5_000,
  firstAddress = 10,
  connect = false,
  reportEveryMs = 0,
  pollEveryMs = 0,
  logEveryMs = 0,
  logLines = 5,
  failover,
  maxSockets = 64,
  devices,
}) {
  const processes = Math.max(1, Math.ceil(count / perProcess));
  const children = [];
  for (let i = 0; i < processes; i++) {
    const child = fork(join(here, 'lib/fleet-sim-child.mjs'), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.exited = new Promise((resolve) => child.once('exit', resolve));
    children.push(child);
  }
  const ask = (child, message, field) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`device process: no ${field} in time`)), STEP_TIMEOUT_MS);
      const on = (m) => {
        if (m.failed) reject(new Error(`device process: ${m.failed}`));
        else if (m[field] === undefined) return;
        else resolve(m);
        clearTimeout(timer);
        child.off('message', on);
      };
      child.on('message', on);
      child.exited.then((code) => reject(new Error(`device process exited ${code}`)));
      if (message !== undefined) child.send(message);
    });
  const share = (i) => Math.floor(count / processes) + (i < count % processes ? 1 : 0);
  const offset = (i) => Array.from({ length: i }, (_, j) => share(j)).reduce((a, b) => a + b, 0);
  const started = await Promise.all(
    children.map((child, i) =>
      ask(
        child,
        {
          start: {
            url,
            fleetId,
            provisioningKey,
            count: share(i),
            devices: devices?.slice(offset(i), offset(i) + share(i)),
            localAddress: `127.0.${Math.floor((firstAddress + i) / 256)}.${(firstAddress + i) % 256}`,
            connect,
            reportEveryMs,
            pollEveryMs,
            logEveryMs,
            logLines,
            failover,
            maxSockets,
          },
        },
        'registered',
      ),
    ),
  );
  return {
    uuids: started.flatMap((m) => m.uuids),
    pids: children.map((c) => c.pid),
    go: () => Promise.all(children.map((c) => ask(c, 'go', 'going'))),
    query: (message, field) =>
      Promise.all(children.map((c, i) => ask(c, typeof message === 'function' ? message(i) : message, field))),
    async stop() {
      const all = (await Promise.all(children.map((c) => ask(c, 'stop', 'stats')))).map((m) => m.stats);
      const merged = { errors: 0, firstError: undefined, linesSent: 0, linesAccepted: 0, actions: 0, loopP99: [] };
      for (const kind of ['report', 'logs', 'poll']) merged[kind] = all.flatMap((s) => s[kind]);
      for (const s of all) {
        merged.errors += s.errors;
        merged.firstError ??= s.firstError;
        merged.linesSent += s.linesSent;
        merged.linesAccepted += s.linesAccepted;
        merged.actions += s.actions;
        merged.loopP99.push(s.loopP99);
      }
      return merged;
    },
    async close() {
      for (const c of children) if (c.connected) c.send('close');
      await Promise.race([Promise.all(children.map((c) => c.exited)), sleep(10_000)]);
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    },
  };
}

/** Count, median and p99 of a list of latencies (ms), for printing. */
export function summary(latencies) {
  if (latencies.length === 0) return 'none';
  const { median, p99, max } = summarize(latencies);
  return `${latencies.length}, p50 ${median.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(0)} ms`;
}

async function main() {
  const { api, startServer } = await import('./lib/control-plane.mjs');
  const { stopAll } = await import('./lib/children.mjs');
  const reporters = Number(process.env.BENCH_REPORTERS ?? 1_000);
  const reportEveryS = Number(process.env.BENCH_REPORT_EVERY_S ?? 6);
  const loggers = Number(process.env.BENCH_LOGGERS ?? 2_000);
  const seconds = Number(process.env.BENCH_SECONDS ?? 30);
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-fleet-sim-'));
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const fleets = [];
  const dialect = process.env.BENCH_DATABASE ?? 'sqlite';
  let postgres;
  try {
    // Retention above what one logger sends in the run, so every line accepted must still be there at the end.
    const retention = Math.max(1_000, 5 * (seconds + 10));
    const args = ['--log-retention', String(retention)];
    if (dialect === 'postgres') {
      const { createPostgresDatabase } = await import('../packages/testkit/dist/databases.js');
      const adminUrl = process.env.FLOTILLA_TEST_POSTGRES_URL;
      if (!adminUrl)
        throw new Error('BENCH_DATABASE=postgres needs FLOTILLA_TEST_POSTGRES_URL (bash scripts/postgres.sh)');
      postgres = await createPostgresDatabase(adminUrl);
      args.push('--database', postgres.url);
    }
    // The probe (and the profiler) go to the server only: the device processes forked below must not inherit them.
    const probeOut = join(dir, 'probe.json');
    const nodeOptions = process.env.NODE_OPTIONS;
    process.env.NODE_OPTIONS = [nodeOptions, `--import ${join(here, 'lib/fleet-server-probe.mjs')}`].join(' ');
    process.env.FLEET_PROBE_OUT = probeOut;
    if (process.env.BENCH_PROFILE) process.env.FLEET_PROBE_PROFILE = process.env.BENCH_PROFILE;
    let server;
    try {
      server = await startServer(join(dir, 'server'), port, args);
    } finally {
      if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = nodeOptions;
      delete process.env.FLEET_PROBE_OUT;
      delete process.env.FLEET_PROBE_PROFILE;
    }
    const fleet = await api(server, 'POST', '/fleets', { name: 'fleet-sim' });
    const { key } = await api(server, 'POST', `/fleets/${fleet.slug}/provisioning-keys`, { name: 'fleet-sim' });
    const common = { url: server.url, fleetId: fleet.id, provisioningKey: key };
    let t0 = performance.now();
    const reporting = await startFleet({ ...common, count: reporters, reportEveryMs: reportEveryS * 1000 });
    fleets.push(reporting);
    const logging = await startFleet({
      ...common,
      count: loggers,
      perProcess: Math.ceil(loggers / 2),
      firstAddress: 40,
      logEveryMs: 1_000,
      logLines: 5,
    });
    fleets.push(logging);
    console.log(
      `registered ${reporters + loggers} devices in ${((performance.now() - t0) / 1000).toFixed(1)} s; running ${seconds} s`,
    );
    t0 = performance.now();
    server.child.kill('SIGUSR2');
    await Promise.all([reporting.go(), logging.go()]);
    const simulators = [...reporting.pids, ...logging.pids];
    const [load, ...simLoads] = await Promise.all(
      [server.child.pid, ...simulators].map((pid) => measureIdle(pid, seconds)),
    );
    const [r, l] = await Promise.all([reporting.stop(), logging.stop()]);
    const elapsed = (performance.now() - t0) / 1000;
    server.child.kill('SIGUSR2');
    let probe;
    for (let i = 0; i < 50 && !probe; i++) {
      await sleep(100);
      try {
        probe = JSON.parse(readFileSync(probeOut, 'utf8'));
      } catch {
        // not written yet
      }
    }

    // Every line the server accepted must be stored: counted back per device through the user API.
    let stored = 0;
    const uuids = [...logging.uuids];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let uuid = uuids.pop(); uuid; uuid = uuids.pop()) {
          const { items } = await api(server, 'GET', `/devices/${uuid}/logs?tail=${retention}`);
          stored += items.length;
        }
      }),
    );
    console.log(
      `\n${dialect}, ${reporters} reporting + ${loggers} logging devices, ${elapsed.toFixed(0)} s\nreports: ${(r.report.length / elapsed).toFixed(0)}/s (goal ${Math.round(reporters / reportEveryS)}/s), ${summary(r.report)}`,
    );
    console.log(`log posts: ${(l.logs.length / elapsed).toFixed(0)}/s, ${summary(l.logs)}`);
    if (probe) {
      const gcMs = probe.gc.reduce((a, b) => a + b, 0);
      console.log(`inside the server: reports ${summary(probe.latencies.report)}`);
      console.log(`inside the server: log posts ${summary(probe.latencies.logs)}`);
      console.log(
        `server event loop delay: p50 ${probe.loop.p50.toFixed(1)} ms, p99 ${probe.loop.p99.toFixed(1)} ms, p99.9 ${probe.loop.p999.toFixed(1)} ms, max ${probe.loop.max.toFixed(0)} ms; GC: ${probe.gc.length} pauses, ${gcMs.toFixed(0)} ms in all, longest ${Math.max(0, ...probe.gc).toFixed(1)} ms`,
      );
      const requests = probe.latencies.report.length + probe.latencies.logs.length + probe.latencies.other.length;
      console.log(
        `server CPU time per request (reports and log posts, from the first to the last answered): ${(probe.cpuMs / requests).toFixed(3)} ms`,
      );
    } else console.log('inside the server: the probe wrote nothing');
    console.log(
      `simulator event loop delay p99: ${[...r.loopP99, ...l.loopP99].map((ms) => `${ms.toFixed(0)} ms`).join(', ')}`,
    );
    console.log(
      `log lines: ${(l.linesAccepted / elapsed).toFixed(0)}/s accepted (goal ${loggers * 5}/s); sent ${l.linesSent}, accepted ${l.linesAccepted}, stored ${stored}: ${stored === l.linesAccepted && l.linesAccepted === l.linesSent ? 'none lost' : `${l.linesSent - stored} LOST`}`,
    );
    console.log(
      `server: CPU ${load.cpuPercent.toFixed(0)} % of a core, RSS ${load.samples.at(-1).rss.toFixed(0)} MB; simulator processes: CPU ${simLoads.map((s) => s.cpuPercent.toFixed(0)).join(' + ')} %; load average ${loadavg()[0].toFixed(1)}; errors: ${r.errors + l.errors}${r.firstError || l.firstError ? ` (first: ${r.firstError ?? l.firstError})` : ''}`,
    );
  } finally {
    for (const f of fleets) await f.close();
    await stopAll();
    await postgres?.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
