#!/usr/bin/env node
// Agent cost under heavy service logging, on a managed device (the way a real one runs).
//   flotilla-server on a fresh data folder and loopback port; a fleet; a 3-service compose project (web, worker, db
//   with a named volume), each service FROM flotilla-test/busybox:latest running a busybox sh loop that, every
//   second, prints a burst of BENCH_LOG_RATE unique lines `<service> <seq> <padding>` and then waits for the
//   second to end (`sleep 1 &` started before the burst, `wait` after it); worker prints its odd seqs to stderr.
//   Deployed with the real CLI (`flotilla login` + `flotilla deploy`), then bin/flotilla-agent provisioned from the
//   fleet's config.json, device API on. Once the 3 containers run and the device reports the release and is online,
//   the bench follows the device's logs as a user does (GET /api/v1/devices/<uuid>/logs?follow=1), settles 10 s,
//   then samples the agent (and, as context, the server) once a second for BENCH_SECONDS: CPU % of one core from
//   /proc utime+stime, VmRSS, RssAnon.
//   Produced lines: the seq numbers each container has logged (`docker logs --tail`) at the start and the end of
//   the window. Delivered lines: service lines the server stored (its createdAt) inside the window, as the follow
//   stream carries them. The server keeps only the newest --log-retention (default 1,000) lines per device, far
//   less than a window at this rate, so the exactly-once check is made on the follow stream, which carries every
//   batch the server stores as it stores it: after the window the producers are paused (a file in the container),
//   the agent's queue drains, and every (service, seq) produced in the window must have arrived exactly once.
//   The stored tail (GET …/logs, no follow) is cross-checked against the stream.
// Run: `node bench/agent-logs.mjs` from the repository root, with a built tree (npm run build) and Docker running.
// Env: BENCH_LOG_RATE lines/s per service (430); BENCH_SECONDS sampling window (60); BENCH_COMPARE_FLAGS=1 adds a
// second run with FLOTILLA_AGENT_NODE_FLAGS="" (no node flags: TurboFan on, default young generation);
// BENCH_TRACE=1 prints every per-second sample. Progress goes to stderr, the report to stdout.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { assertAlive, assertNodeProcess, cleanupOnce, launch, stop, stopAll, waitUntil } from './lib/children.mjs';
import { api, cli, startServer, writeComposeProject } from './lib/control-plane.mjs';
import { docker, removeImages, removeNamespace, runningContainers } from './lib/docker.mjs';
import { measureIdle, summarize } from './lib/proc-sampler.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const { ensureBusyboxImage, freePort } = await import(join(root, 'packages/testkit/dist/index.js'));

const rate = Number(process.env.BENCH_LOG_RATE ?? 430);
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const compareFlags = process.env.BENCH_COMPARE_FLAGS === '1';
const trace = process.env.BENCH_TRACE === '1';
if (!Number.isInteger(rate) || rate < 1)
  throw new Error(`BENCH_LOG_RATE must be a positive integer, not ${process.env.BENCH_LOG_RATE}`);
if (!Number.isInteger(seconds) || seconds < 2)
  throw new Error(`BENCH_SECONDS must be an integer >= 2, not ${process.env.BENCH_SECONDS}`);
const SETTLE_SECONDS = 10;
/** How long the agent may take to ship what it queued once the producers are paused. */
const DRAIN_TIMEOUT_MS = 180_000;
const SERVICES = ['web', 'worker', 'db'];
const STDERR_SERVICE = 'worker';
const PAUSE_FILE = '/tmp/bench-pause';
const PADDING = 'the quick brown fox jumps over the lazy dog while logs pile up';
const LINE = /^(\w+) (\d+) (.*)$/;
const deviceFlags = readFileSync(join(root, 'packages/agent/node-flags'), 'utf8').trim();
const nonce = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'flotilla-agent-logs-bench-'));
const execFileAsync = promisify(execFile);
/** Every namespace and registry host (server) a run used: what cleanup removes. */
const namespaces = new Set();
const registryHosts = new Set();
const progress = (message) => process.stderr.write(`bench: ${message}\n`);

// ------------------------------------------------------------------------------------------------ the producers
/** The service's loop: a burst of `rate` lines a second; TERM ends it at once, PAUSE_FILE silences it. */
function producerScript(service) {
  const print =
    service === STDERR_SERVICE
      ? `if [ $((i % 2)) -eq 1 ]; then echo "${service} $i ${PADDING}" >&2; else echo "${service} $i ${PADDING}"; fi`
      : `echo "${service} $i ${PADDING}"`;
  return [
    "trap 'exit 0' TERM",
    'i=0',
    'while true; do',
    '  sleep 1 & tick=$!',
    `  if [ ! -e ${PAUSE_FILE} ]; then`,
    '    n=0',
    `    while [ $n -lt ${rate} ]; do`,
    '      n=$((n + 1)); i=$((i + 1))',
    `      ${print}`,
    '    done',
    '  fi',
    '  wait $tick',
    'done',
    '',
  ].join('\n');
}

function serviceFiles(base) {
  return (service) => ({
    'produce.sh': producerScript(service),
    Dockerfile: `FROM ${base}\nENV ROLE=${service}\nCOPY produce.sh /produce.sh\nCMD ["sh", "/produce.sh"]\n`,
  });
}

/** service → container id of the agent's running containers in `namespace` (names are `<namespace><service>_…`). */
function serviceContainers(namespace) {
  const out = {};
  for (const line of docker([
    'ps',
    '--no-trunc',
    '--filter',
    `label=io.flotilla.namespace=${namespace}`,
    '--filter',
    'status=running',
    '--format',
    '{{.ID}} {{.Names}}',
  ])
    .split('\n')
    .filter(Boolean)) {
    const [id, name] = line.split(' ');
    const service = SERVICES.find((s) => name.startsWith(`${namespace}${s}_`));
    if (service) out[service] = id;
  }
  if (Object.keys(out).length !== SERVICES.length)
    throw new Error(`expected containers for ${SERVICES.join(', ')}, found ${JSON.stringify(out)}`);
  return out;
}

/** The highest seq each container has logged so far (both streams), and when that was read. */
async function loggedSeqs(containers) {
  const entries = await Promise.all(
    Object.entries(containers).map(async ([service, id]) => {
      const { stdout, stderr } = await execFileAsync('docker', ['logs', '--tail', '8', id], { maxBuffer: 1024 * 1024 });
      let max = -1;
      for (const line of `${stdout}\n${stderr}`.split('\n')) {
        const m = LINE.exec(line);
        if (m && m[1] === service) max = Math.max(max, Number(m[2]));
      }
      if (max < 0) throw new Error(`no ${service} line in its container's log yet`);
      return [service, max];
    }),
  );
  return { at: Date.now(), seqs: Object.fromEntries(entries) };
}

// -------------------------------------------------------------------------------------- what the server stored
/**
 * Follows the device's logs through the user API (Server-Sent Events) and tallies every line: per (service, seq)
 * how often it arrived, when the server stored it (createdAt) and when the engine stamped it (timestamp).
 */
async function followDeviceLogs(server, uuid) {
  const tally = {
    seen: Object.fromEntries(SERVICES.map((s) => [s, new Map()])),
    /** createdAt of every service line, duplicates included: what the server took in, per moment. */
    stored: [],
    lastArrival: Date.now(),
    system: 0,
    suppressed: 0,
    suppressionNotices: 0,
    malformed: 0,
    wrongStream: 0,
    error: undefined,
  };
  const onEntry = (entry) => {
    if (entry.isSystem) {
      tally.system += 1;
      const m = /^Suppressed (\d+) message/.exec(entry.message);
      if (m) {
        tally.suppressionNotices += 1;
        tally.suppressed += Number(m[1]);
      }
      return;
    }
    const m = LINE.exec(entry.message);
    if (!m || m[1] !== entry.serviceName || !tally.seen[m[1]] || m[3] !== PADDING) {
      tally.malformed += 1;
      return;
    }
    const seq = Number(m[2]);
    if (entry.isStdErr !== (m[1] === STDERR_SERVICE && seq % 2 === 1)) tally.wrongStream += 1;
    const previous = tally.seen[m[1]].get(seq);
    if (previous) previous.count += 1;
    else tally.seen[m[1]].set(seq, { count: 1, createdAt: entry.createdAt, timestamp: entry.timestamp });
    tally.stored.push(entry.createdAt);
    tally.lastArrival = Date.now();
  };

  const controller = new AbortController();
  const response = await fetch(`${server.url}/api/v1/devices/${uuid}/logs?follow=1&tail=0`, {
    headers: { authorization: `Bearer ${server.apiKey}` },
    signal: controller.signal,
  });
  if (!response.ok)
    throw new Error(`following the device's logs answered ${response.status}: ${await response.text()}`);
  let following;
  const subscribed = new Promise((resolve) => (following = resolve));
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of response.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.indexOf('\n\n')) !== -1) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (event === ': following') following();
        if (!event.startsWith('event: log\n')) continue;
        onEntry(JSON.parse(event.slice(event.indexOf('\ndata: ') + 7)));
      }
    }
    if (!controller.signal.aborted) throw new Error('the server ended the log follow stream');
  })().catch((error) => {
    if (!controller.signal.aborted) tally.error = error;
  });
  await Promise.race([subscribed, reading, sleep(10_000)]);
  if (tally.error) throw tally.error;
  return {
    tally,
    alive: () => {
      if (tally.error) throw new Error(`following the device's logs failed: ${tally.error.message}`);
    },
    stop: async () => {
      controller.abort();
      await reading;
    },
  };
}

/** For seq ranges {service: [from, to]} (both included): lines expected, missing, duplicated, delivery lag. */
function verify(tally, ranges) {
  let expected = 0;
  let missing = 0;
  let duplicates = 0;
  const lags = [];
  for (const [service, [from, to]] of Object.entries(ranges)) {
    const seen = tally.seen[service];
    for (let seq = from; seq <= to; seq++) {
      expected += 1;
      const line = seen.get(seq);
      if (!line) missing += 1;
      else {
        duplicates += line.count - 1;
        lags.push(line.createdAt - line.timestamp);
      }
    }
  }
  return { expected, missing, duplicates, lag: lags.length ? summarize(lags) : undefined };
}

// -------------------------------------------------------------------------------------------------------- a run
async function measureRun(label, agentEnv, base) {
  const runNonce = `${nonce}${label.key}`;
  const namespace = `benchlog${runNonce}-`;
  namespaces.add(namespace);
  const runDir = join(dir, label.key);
  const port = await freePort();
  progress(`[${label.key}] starting flotilla-server on port ${port}`);
  const server = await startServer(join(runDir, 'server'), port);
  registryHosts.add(`127.0.0.1:${port}`);
  let agent;
  let follower;
  try {
    assertNodeProcess(server.child.pid);
    const slug = `bench-logs-${runNonce}`;
    await api(server, 'POST', '/fleets', { name: 'Agent log bench', slug, deviceType: 'generic-amd64' });
    const configPath = join(runDir, 'config.json');
    writeFileSync(
      configPath,
      JSON.stringify(await api(server, 'POST', `/fleets/${slug}/config-json`, { developmentMode: true }), null, 2),
    );
    const project = join(runDir, 'project');
    writeComposeProject(project, base, { web: [], worker: [], db: ['data:/data'] }, ['data'], {
      files: serviceFiles(base),
    });
    const cliDir = join(runDir, 'cli');
    await cli(cliDir, ['login', '--url', server.url, '--api-key', server.apiKey]);
    progress(`[${label.key}] deploying the 3 logging services with bin/flotilla deploy`);
    const { release } = JSON.parse(await cli(cliDir, ['deploy', slug, project, '--json']));

    progress(`[${label.key}] starting the agent (${label.flags})`);
    agent = launch(
      'flotilla-agent',
      [
        '--config',
        configPath,
        '--data',
        join(runDir, 'device'),
        '--namespace',
        namespace,
        '--api-address',
        '127.0.0.1',
        '--api-port',
        String(await freePort()),
        '--log-level',
        'warn',
      ],
      undefined,
      { env: agentEnv },
    );
    const aliveAll = () => {
      server.alive();
      assertAlive(agent, 'flotilla-agent');
      follower?.alive();
    };
    await waitUntil('the 3 services to run', () => runningContainers(namespace) === 3, {
      timeoutMs: 180_000,
      alive: aliveAll,
    });
    const device = await waitUntil(
      'the device to report the release and be online',
      async () => {
        const [listed] = (await api(server, 'GET', `/devices?fleet=${slug}`)).items;
        if (!listed) return false;
        const d = await api(server, 'GET', `/devices/${listed.uuid}`);
        return d.runningRelease === release.commit && d.isOnline ? d : false;
      },
      { timeoutMs: 120_000, alive: aliveAll },
    );
    const exe = assertNodeProcess(agent.pid);
    const cmdline = readFileSync(`/proc/${agent.pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const nodeFlags =
      cmdline
        .slice(
          1,
          cmdline.findIndex((arg) => arg.endsWith('main.mjs')),
        )
        .join(' ') || 'none';
    follower = await followDeviceLogs(server, device.uuid);
    const containers = serviceContainers(namespace);
    progress(
      `[${label.key}] agent pid ${agent.pid} (${exe}, flags: ${nodeFlags}) converged; following device ${device.uuid.slice(0, 7)}'s logs; settling ${SETTLE_SECONDS} s, then sampling for ${seconds} s`,
    );
    await sleep(SETTLE_SECONDS * 1000);
    aliveAll();

    const before = await loggedSeqs(containers);
    const [agentRun, serverRun] = await Promise.all([
      measureIdle(agent.pid, seconds),
      measureIdle(server.child.pid, seconds),
    ]);
    const after = await loggedSeqs(containers);
    aliveAll();
    const load = loadavg();
    const restarted = JSON.stringify(serviceContainers(namespace)) !== JSON.stringify(containers);

    // Pause the producers, let the agent ship what it queued, then check the window's lines.
    const pausedAt = Date.now();
    await Promise.all(
      Object.values(containers).map((id) => execFileAsync('docker', ['exec', id, 'touch', PAUSE_FILE])),
    );
    const ranges = Object.fromEntries(SERVICES.map((s) => [s, [before.seqs[s] + 1, after.seqs[s]]]));
    progress(`[${label.key}] window done; producers paused; waiting for the agent's queue to drain`);
    let drained = true;
    await waitUntil(
      'the queue to drain',
      () => {
        const quietMs = Date.now() - follower.tally.lastArrival;
        if (Date.now() - pausedAt > DRAIN_TIMEOUT_MS) {
          drained = false;
          return true;
        }
        return quietMs > 10_000 || (quietMs > 3_000 && verify(follower.tally, ranges).missing === 0);
      },
      { timeoutMs: DRAIN_TIMEOUT_MS + 60_000, intervalMs: 500, alive: aliveAll },
    );
    const drainMs = follower.tally.lastArrival - pausedAt;
    const check = verify(follower.tally, ranges);
    const storedTail = (await api(server, 'GET', `/devices/${device.uuid}/logs?tail=100000`)).items;
    const tailUnseen = storedTail.filter((e) => {
      const m = LINE.exec(e.message);
      return !e.isSystem && !(m && follower.tally.seen[m[1]]?.has(Number(m[2])));
    }).length;
    const windowSeconds = (after.at - before.at) / 1000;
    const produced = Object.fromEntries(SERVICES.map((s) => [s, after.seqs[s] - before.seqs[s]]));
    const delivered = follower.tally.stored.filter((t) => t > before.at && t <= after.at).length;
    const tally = follower.tally;
    return {
      label,
      agentRun,
      serverRun,
      load,
      restarted,
      ranges,
      check,
      drained,
      drainMs,
      storedTail: storedTail.length,
      tailUnseen,
      windowSeconds,
      produced,
      delivered,
      tally,
      nodeFlags,
      pid: agent.pid,
      device: device.uuid,
    };
  } finally {
    await follower?.stop();
    if (agent) await stop(agent);
    await stop(server.child);
    for (const failure of removeNamespace(namespace)) progress(`cleanup: ${failure}`);
  }
}

// ------------------------------------------------------------------------------------------------------ report
const mb = (n) => n.toFixed(1);
const pct = (n) => n.toFixed(1);
const loadText = (load) => load.map((l) => l.toFixed(2)).join(' ');

function printRun(run) {
  const cpu = summarize(run.agentRun.samples.map((s) => s.cpu));
  const rss = summarize(run.agentRun.samples.map((s) => s.rss));
  const anon = summarize(run.agentRun.samples.map((s) => s.anon));
  const serverCpu = summarize(run.serverRun.samples.map((s) => s.cpu));
  const producedTotal = Object.values(run.produced).reduce((a, b) => a + b, 0);
  const { check, tally } = run;
  console.log(
    `\n${run.label.title}: agent pid ${run.pid}, node flags ${run.nodeFlags}; device ${run.device.slice(0, 7)}`,
  );
  console.log(
    `  produced: ${producedTotal} lines in ${run.windowSeconds.toFixed(1)} s = ${(producedTotal / run.windowSeconds).toFixed(0)} lines/s (${SERVICES.map((s) => `${s} ${(run.produced[s] / run.windowSeconds).toFixed(0)}`).join(', ')}; ${STDERR_SERVICE}'s odd seqs on stderr; one burst a second, so ±1 burst per service at the window's edges)${run.restarted ? '; A CONTAINER WAS REPLACED during the window' : ''}`,
  );
  console.log(
    `  delivered: ${run.delivered} lines stored by the server in the same window = ${(run.delivered / run.windowSeconds).toFixed(0)} lines/s`,
  );
  console.log(
    `  agent CPU % of one core: mean ${pct(run.agentRun.cpuPercent)} (window total), per-second median ${pct(cpu.median)}, max ${pct(cpu.max)}`,
  );
  console.log(
    `  agent RSS MB: median ${mb(rss.median)}, max ${mb(rss.max)}; RssAnon median ${mb(anon.median)}, max ${mb(anon.max)}`,
  );
  console.log(
    `  server CPU % of one core (context): mean ${pct(run.serverRun.cpuPercent)}, per-second median ${pct(serverCpu.median)}, max ${pct(serverCpu.max)}`,
  );
  console.log(`  load average at the end of the window: ${loadText(run.load)}`);
  const ranges = Object.entries(run.ranges)
    .map(([s, [from, to]]) => `${s} ${from}..${to}`)
    .join(', ');
  console.log(
    `  delivery check (follow stream, producers paused after the window, ${!run.drained ? `NOT DRAINED within ${DRAIN_TIMEOUT_MS / 1000} s` : run.drainMs > 0 ? `last line stored ${(run.drainMs / 1000).toFixed(1)} s after the pause was asked` : 'nothing left to ship when the pause was asked'}): seqs ${ranges}`,
  );
  console.log(
    `    ${check.expected} lines expected, ${check.missing} missing, ${check.duplicates} duplicates; wrong stream flag ${tally.wrongStream}, malformed ${tally.malformed}; suppression notices ${tally.suppressionNotices} (${tally.suppressed} lines)`,
  );
  if (check.lag)
    console.log(
      `    engine stamp → stored by the server, ms: median ${check.lag.median}, p99 ${check.lag.p99}, max ${check.lag.max}`,
    );
  console.log(
    `  stored tail (GET …/logs, retention-bound): ${run.storedTail} lines, ${run.tailUnseen} of them not seen on the follow stream`,
  );
  if (trace) {
    run.agentRun.samples.forEach((s, i) => {
      console.log(
        `    t=${String(i + 1).padStart(3)} s  agent rss ${mb(s.rss)}  anon ${mb(s.anon)}  cpu ${pct(s.cpu)} %  server cpu ${pct(run.serverRun.samples[i].cpu)} %`,
      );
    });
  }
}

function printReport(start, runs) {
  console.log(`flotilla-agent log bench, started ${start.date.toISOString()}, revision ${revision()}`);
  console.log(`node ${process.version}, ${cpus().length} CPUs, load average at the start ${loadText(start.load)}`);
  console.log(
    `3 services asked for ${rate} lines/s each; ${seconds} s window after ${SETTLE_SECONDS} s settling; CPU % is of one core, from /proc utime+stime`,
  );
  console.log(
    'the server keeps only the newest --log-retention lines per device (default 1000), so delivery is counted on the live follow stream (GET /api/v1/devices/<uuid>/logs?follow=1), which carries every batch the server stores',
  );
  for (const run of runs) printRun(run);
  if (runs.length === 2) {
    const [a, b] = runs;
    const med = (run, key) => summarize(run.agentRun.samples.map((s) => s[key])).median;
    console.log(
      `\nflags: agent CPU mean ${pct(a.agentRun.cpuPercent)} % (${a.nodeFlags}) vs ${pct(b.agentRun.cpuPercent)} % (${b.nodeFlags}); RSS median ${mb(med(a, 'rss'))} vs ${mb(med(b, 'rss'))} MB`,
    );
  }
}

// ----------------------------------------------------------------------------------------------------- cleanup
const cleanup = cleanupOnce(async () => {
  await stopAll();
  const failures = [
    ...[...namespaces].flatMap((ns) => removeNamespace(ns)),
    ...removeImages((ref) => [...registryHosts].some((host) => ref.startsWith(`${host}/`))),
  ];
  rmSync(dir, { recursive: true, force: true });
  return failures;
}, progress);

try {
  const start = { date: new Date(), load: loadavg() };
  const base = await ensureBusyboxImage();
  const runs = [
    await measureRun(
      { key: 'd', title: `DEFAULT device flags (packages/agent/node-flags: ${deviceFlags})`, flags: 'default flags' },
      { FLOTILLA_AGENT_NODE_FLAGS: undefined },
      base,
    ),
  ];
  if (compareFlags)
    runs.push(
      await measureRun(
        { key: 'n', title: 'NO node flags (FLOTILLA_AGENT_NODE_FLAGS="": TurboFan on)', flags: 'no flags' },
        { FLOTILLA_AGENT_NODE_FLAGS: '' },
        base,
      ),
    );
  printReport(start, runs);
} finally {
  await cleanup();
}
