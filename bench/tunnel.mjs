#!/usr/bin/env node
// Remote access bench (issue 12 targets): every figure through the real parts, each in its own process, on loopback:
//   client ──TCP──▶ `flotilla tunnel` (bin/flotilla) ──ws──▶ flotilla-server ──ws──▶ flotilla-agent ──TCP──▶ service
// The service end (a TCP source, sink or echo) and the client live in this process. Beside each figure, the limit
// on the same machine in the same run: the same data through a chain of three bare Node TCP pipes (one process per
// hop, `socket.pipe(next)`), so the ratio says what the WebSockets, framing and checks cost.
//   1. throughput, one stream, device → client (download) and client → device (upload): BENCH_MIB MiB (1024);
//   2. 20 downloads at once: once all flow, what each receives in 3 s: the aggregate, and fairness (slowest / fastest);
//   3. added round-trip latency: 32-byte messages echoed by the service, 2,000 in a row, p50 and p99, minus the same
//      measured directly against the echo server;
//   4. 200 concurrent tunnel connections to one device: each sends and gets back 1 KiB; errors counted;
//   5. the agent's RSS idle, then with one tunnel connection open and idle for 20 s (target: within 5 MB);
//   6. interactive echo: `flotilla ssh <device>` under a pseudo-terminal (host shell); 300 keypresses, each timed from
//      write to its echo on the terminal (target p99 < 20 ms);
//   7. BENCH_SHELL_DEVICES (100) more agents on the same server node, each with an open shell that runs a command.
// Run: `node bench/tunnel.mjs` from the repository root after `npm run setup` (Docker running: the agents use it).
// Progress goes to stderr, the report to stdout.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertAlive, assertNodeProcess, launch, stop, stopAll, waitUntil } from './lib/children.mjs';
import { api, cli, startServer } from './lib/control-plane.mjs';
import { memoryMb, summarize } from './lib/proc-sampler.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const { freePort } = await import(join(root, 'packages/testkit/dist/index.js'));
const { spawn: spawnPty } = await import('@lydell/node-pty');
const WebSocket = (await import('ws')).default;

const MiB = 1024 * 1024;
const TARGETS = { oneStreamMiBs: 100, fairShare: 0.8, addedP50Ms: 2, addedP99Ms: 10, echoP99Ms: 20, idleRssMb: 5 };
const totalMiB = Number(process.env.BENCH_MIB ?? 1024);
const shellDevices = Number(process.env.BENCH_SHELL_DEVICES ?? 100);
const nonce = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'flotilla-tunnel-bench-'));
const progress = (message) => process.stderr.write(`bench: ${message}\n`);
const report = [];
const say = (line) => {
  report.push(line);
  process.stderr.write(`bench: ${line}\n`);
};

// ------------------------------------------------------------------------------------------- service ends (here)
const listen = async (server) => {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
};
const block = randomBytes(64 * 1024);
/** Each connection's first line names what it wants: `down <bytes>` (the service writes), `up` (it reads to the end). */
const service = createServer({ allowHalfOpen: true }, (socket) => {
  socket.once('data', (first) => {
    const [verb, size] = first.toString().split(' ');
    if (verb === 'down') {
      let left = Number(size);
      const pump = () => {
        while (left > 0) {
          const chunk = left >= block.length ? block : block.subarray(0, left);
          left -= chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    } else {
      socket.on('data', () => undefined);
      socket.on('end', () => socket.end('done'));
    }
  });
  socket.on('error', () => undefined);
});
const echo = createServer((socket) => {
  socket.pipe(socket);
  socket.on('error', () => undefined);
});
const servicePort = await listen(service);
const echoPort = await listen(echo);

/**
 * One download of `bytes` through `port`: resolves with MiB/s from the request to the last byte, and `flowing`:
 * MiB/s from the first byte to the last (what a stream gets once open, for comparing streams that share the link).
 */
function download(port, bytes, detail = false) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let first = 0;
    let got = 0;
    const socket = connect(port, '127.0.0.1', () => socket.write(`down ${bytes}`));
    socket.on('data', (chunk) => {
      if (got === 0) first = performance.now();
      got += chunk.length;
    });
    socket.on('end', () => {
      const end = performance.now();
      if (got !== bytes) return reject(new Error(`downloaded ${got} of ${bytes} bytes`));
      const rate = bytes / MiB / ((end - started) / 1000);
      resolve(detail ? { rate, flowing: bytes / MiB / ((end - first) / 1000), firstByteMs: first - started } : rate);
    });
    socket.on('error', reject);
  });
}

/** One upload of `bytes` through `port`, confirmed by the service: resolves with MiB/s. */
function upload(port, bytes) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('up ');
      let left = bytes;
      const pump = () => {
        while (left > 0) {
          const chunk = left >= block.length ? block : block.subarray(0, left);
          left -= chunk.length;
          if (!socket.write(chunk)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    });
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk;
    });
    socket.on('end', () => {
      if (answer !== 'done') reject(new Error(`upload not confirmed (${answer})`));
      else resolve(bytes / MiB / ((performance.now() - started) / 1000));
    });
    socket.on('error', reject);
  });
}

/** `count` round trips of 32 bytes, one after the other, on one connection: the latencies in ms. */
function roundTrips(port, count) {
  return new Promise((resolve, reject) => {
    const times = [];
    const message = Buffer.alloc(32, 1);
    let started = 0;
    let pending = 0;
    const socket = connect(port, '127.0.0.1', () => {
      socket.setNoDelay(true);
      send();
    });
    const send = () => {
      started = performance.now();
      pending = message.length;
      socket.write(message);
    };
    socket.on('data', (chunk) => {
      pending -= chunk.length;
      if (pending > 0) return;
      times.push(performance.now() - started);
      if (times.length === count) {
        socket.end();
        resolve(times);
      } else send();
    });
    socket.on('error', reject);
  });
}

/** `count` connections opened at once, each echoing 1 KiB: how many came back whole. */
async function concurrentEchoes(port, count) {
  const one = () =>
    new Promise((resolve) => {
      const payload = randomBytes(1024);
      const chunks = [];
      const socket = connect(port, '127.0.0.1', () => socket.write(payload));
      socket.setTimeout(60_000, () => socket.destroy(new Error('timeout')));
      socket.on('data', (chunk) => {
        chunks.push(chunk);
        if (Buffer.concat(chunks).length >= payload.length) {
          socket.end();
          resolve(Buffer.concat(chunks).equals(payload));
        }
      });
      socket.on('error', () => resolve(false));
    });
  const results = await Promise.all(Array.from({ length: count }, one));
  return results.filter(Boolean).length;
}

// --------------------------------------------------------------------------------- the bare Node limit (3 hops)
/** Three bare Node processes, each piping every connection to the next hop: the chain's entry port. */
async function bareChain(target) {
  let next = target;
  for (let hop = 0; hop < 3; hop++) {
    const port = await freePort();
    const code = `const net=require('net');net.createServer({allowHalfOpen:true},(s)=>{const n=net.connect(${next},'127.0.0.1');s.pipe(n).pipe(s);s.on('error',()=>n.destroy());n.on('error',()=>s.destroy());}).listen(${port},'127.0.0.1',()=>console.log('up'))`;
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    chains.push(child);
    next = port;
  }
  return next;
}
const chains = [];

// ------------------------------------------------------------------------------------------------ the real parts
const cliDir = join(dir, 'cli');
function startTunnel(deviceUuid, mapping) {
  return new Promise((resolve, reject) => {
    const child = launch(
      'flotilla',
      ['tunnel', deviceUuid, mapping],
      (line) => {
        const port = /^tunnel 127\.0\.0\.1:(\d+)/.exec(line)?.[1];
        if (port) resolve({ child, port: Number(port) });
        return 'consumed';
      },
      { env: { FLOTILLA_CONFIG_DIR: cliDir } },
    );
    child.exited.then((code) => reject(new Error(`flotilla tunnel exited (${code})`)));
  });
}

function startDevice(config, name) {
  const data = join(dir, name);
  mkdirSync(data, { mode: 0o700 });
  const configPath = join(data, 'config.json');
  writeFileSync(configPath, JSON.stringify(config), { mode: 0o600 });
  return launch(
    'flotilla-agent',
    [
      '--config',
      configPath,
      '--data',
      data,
      '--namespace',
      `tb${nonce}${name}-`,
      '--api-port',
      '0',
      '--log-level',
      'warn',
    ],
    () => undefined,
  );
}

async function onlineDevices(server, slug) {
  const { items } = await api(server, 'GET', `/devices?fleet=${slug}`);
  return items.filter((d) => d.isOnline);
}

/** Median RSS (MB) of `pid` over `seconds` one-second samples. */
async function rssOver(pid, seconds) {
  const samples = [];
  for (let i = 0; i < seconds; i++) {
    await sleep(1_000);
    samples.push(memoryMb(pid).rss);
  }
  return summarize(samples).median;
}

/** Interactive echo through `flotilla ssh` under a pseudo-terminal: ms from each keypress to its echo. */
async function keypressEcho(deviceUuid, count) {
  const term = spawnPty(join(root, 'bin/flotilla'), ['ssh', deviceUuid], {
    cols: 120,
    rows: 40,
    env: { ...process.env, FLOTILLA_CONFIG_DIR: cliDir, SHELL: '/bin/sh', PS1: '$ ' },
  });
  let output = '';
  let waiter;
  term.onData((data) => {
    output += data;
    waiter?.();
  });
  const waitFor = (predicate, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no echo; terminal shows ${JSON.stringify(output.slice(-200))}`)),
        timeoutMs,
      );
      waiter = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        waiter = undefined;
        resolve();
      };
      waiter();
    });
  term.write('echo ready-$((6*7))\r');
  await waitFor(() => output.includes('ready-42'));
  await sleep(300);
  const times = [];
  for (let i = 0; i < count; i++) {
    const key = String.fromCharCode(97 + (i % 26));
    const mark = output.length;
    const started = performance.now();
    term.write(key);
    await waitFor(() => output.length > mark && output.slice(mark).includes(key));
    times.push(performance.now() - started);
    await sleep(5);
  }
  term.write('\x15exit\r');
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 5_000);
    term.onExit(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  term.kill();
  return times;
}

/** A shell on each device through the user API, as the CLI opens it: each runs a command and must answer. */
async function shellsOnEveryDevice(server, devices) {
  const sockets = [];
  let answered = 0;
  const errors = [];
  await Promise.all(
    devices.map(
      (device, i) =>
        new Promise((resolve) => {
          const url = `${server.url.replace('http', 'ws')}/api/v1/devices/${device.uuid}/shell?cols=80&rows=24`;
          const ws = new WebSocket(url, {
            headers: { authorization: `Bearer ${server.apiKey}` },
            perMessageDeflate: false,
          });
          sockets.push(ws);
          let text = '';
          let timer = setTimeout(() => {
            errors.push(`${device.uuid.slice(0, 7)}: no answer in 60 s`);
            resolve();
          }, 60_000);
          ws.on('message', (data, isBinary) => {
            if (!isBinary) {
              const control = JSON.parse(data.toString());
              if (control.type === 'ready')
                ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(`echo shell-$((${i}+1000))\r`)]));
              if (control.type === 'error') errors.push(`${device.uuid.slice(0, 7)}: ${control.code}`);
              return;
            }
            text += data.subarray(1).toString();
            if (timer && text.includes(`shell-${i + 1000}`)) {
              answered += 1;
              clearTimeout(timer);
              timer = undefined;
              resolve();
            }
          });
          ws.on('error', (error) => errors.push(`${device.uuid.slice(0, 7)}: ${error.message}`));
        }),
    ),
  );
  return { sockets, answered, errors };
}

// ------------------------------------------------------------------------------------------------------- the run
const started = new Date();
let server;
try {
  const port = await freePort();
  progress(`starting flotilla-server on port ${port}`);
  server = await startServer(join(dir, 'server'), port);
  const slug = `tunnel-${nonce}`;
  await api(server, 'POST', '/fleets', { name: 'Tunnel bench', slug, deviceType: 'generic-amd64' });
  const config = await api(server, 'POST', `/fleets/${slug}/config-json`, {});
  await cli(cliDir, ['login', '--url', server.url, '--api-key', server.apiKey]);

  progress('starting the device agent');
  const agent = startDevice(config, 'd0');
  const [device] = await waitUntil(
    'the device to connect',
    async () => {
      const online = await onlineDevices(server, slug);
      return online.length === 1 ? online : undefined;
    },
    { timeoutMs: 60_000, alive: () => assertAlive(agent, 'flotilla-agent') },
  );
  assertNodeProcess(agent.pid);
  await sleep(3_000);
  progress('agent idle RSS, 10 s');
  const idleRss = await rssOver(agent.pid, 10);

  const bare = await bareChain(servicePort);
  const bareEcho = await bareChain(echoPort);
  const tunnel = await startTunnel(device.uuid, `0:${servicePort}`);
  const echoTunnel = await startTunnel(device.uuid, `0:${echoPort}`);
  const bytes = totalMiB * MiB;

  // 5. agent memory with an idle tunnel connection, before any transfer
  progress('agent RSS with one idle tunnel connection, 20 s');
  const held = connect(echoTunnel.port, '127.0.0.1');
  await new Promise((resolve) => held.once('connect', resolve));
  held.write('x');
  await new Promise((resolve) => held.once('data', resolve));
  const withTunnel = await rssOver(agent.pid, 20);
  held.destroy();
  say(
    `agent RSS idle ${idleRss.toFixed(1)} MB, with an idle tunnel connection ${withTunnel.toFixed(1)} MB: ${(withTunnel - idleRss).toFixed(1)} MB more (target within ${TARGETS.idleRssMb} MB)`,
  );

  // 1. one stream
  progress(`one stream, ${totalMiB} MiB each way, through the tunnel and through the bare chain`);
  await download(tunnel.port, 16 * MiB); // warm-up: the first connection pays for the stream path's first use
  const down = await download(tunnel.port, bytes);
  const up = await upload(tunnel.port, bytes);
  const bareDown = await download(bare, bytes);
  const bareUp = await upload(bare, bytes);
  say(
    `1 stream  down ${down.toFixed(0)} MiB/s, up ${up.toFixed(0)} MiB/s (target ≥ ${TARGETS.oneStreamMiBs}); bare Node chain down ${bareDown.toFixed(0)}, up ${bareUp.toFixed(0)} MiB/s: ratio ${(down / bareDown).toFixed(2)} down, ${(up / bareUp).toFixed(2)} up`,
  );

  // 2. twenty streams
  progress('20 streams at once');
  /**
   * 20 downloads at once; once every one is flowing, the bytes each receives in a 3 s window: the aggregate rate and
   * each stream's share, so opening times do not count as unfairness.
   */
  const twenty = async (port) => {
    const sockets = [];
    const counts = new Array(20).fill(0);
    await Promise.all(
      counts.map(
        (_, i) =>
          new Promise((resolve, reject) => {
            const socket = connect(port, '127.0.0.1', () => socket.write(`down ${64 * 1024 * MiB}`));
            sockets.push(socket);
            socket.on('data', (chunk) => {
              if (counts[i] === 0) resolve();
              counts[i] += chunk.length;
            });
            socket.on('error', reject);
          }),
      ),
    );
    const before = [...counts];
    const t0 = performance.now();
    await sleep(3_000);
    const seconds = (performance.now() - t0) / 1000;
    const rates = counts.map((count, i) => (count - before[i]) / MiB / seconds);
    for (const socket of sockets) socket.destroy();
    // The service ends notice the closes along the chain; the next measurement starts on a quiet machine.
    await sleep(2_000);
    return { aggregate: rates.reduce((sum, r) => sum + r, 0), rates: rates.sort((x, y) => x - y) };
  };
  /** Fairness: the slowest stream's rate over the fastest's in the window (1: perfectly even). */
  const spread = ({ rates }) => (rates[0] / rates.at(-1)).toFixed(2);
  const bareMany = await twenty(bare);
  const many = await twenty(tunnel.port);
  say(
    `20 streams aggregate ${many.aggregate.toFixed(0)} MiB/s = ${((100 * many.aggregate) / down).toFixed(0)} % of one stream (target ≥ ${TARGETS.fairShare * 100} %); slowest/fastest stream ${spread(many)}; bare Node chain ${bareMany.aggregate.toFixed(0)} MiB/s (slowest/fastest ${spread(bareMany)}): ratio ${(many.aggregate / bareMany.aggregate).toFixed(2)}`,
  );

  // 3. latency
  progress('round trips of 32 bytes');
  await roundTrips(echoTunnel.port, 200);
  const direct = summarize(await roundTrips(echoPort, 2_000));
  const through = summarize(await roundTrips(echoTunnel.port, 2_000));
  const viaBare = summarize(await roundTrips(bareEcho, 2_000));
  say(
    `round trip direct p50 ${direct.median.toFixed(3)} ms p99 ${direct.p99.toFixed(3)} ms; through the tunnel p50 ${through.median.toFixed(3)} ms p99 ${through.p99.toFixed(3)} ms: added p50 ${(through.median - direct.median).toFixed(3)} ms (target < ${TARGETS.addedP50Ms}), p99 ${(through.p99 - direct.p99).toFixed(3)} ms (target < ${TARGETS.addedP99Ms}); bare Node chain adds p50 ${(viaBare.median - direct.median).toFixed(3)} ms, p99 ${(viaBare.p99 - direct.p99).toFixed(3)} ms`,
  );

  // 4. concurrent connections
  progress('200 concurrent connections');
  const whole = await concurrentEchoes(echoTunnel.port, 200);
  say(`200 concurrent tunnel connections to one device: ${whole} echoed whole, ${200 - whole} errors`);

  await stop(tunnel.child);
  await stop(echoTunnel.child);

  await sleep(5_000);
  say(`agent RSS after the transfers, idle again: ${(await rssOver(agent.pid, 10)).toFixed(1)} MB`);

  // 6. interactive echo
  progress('keypress echo through flotilla ssh under a pseudo-terminal');
  const keys = summarize(await keypressEcho(device.uuid, 300));
  say(
    `interactive echo (flotilla ssh, host shell, 300 keypresses) p50 ${keys.median.toFixed(2)} ms, p99 ${keys.p99.toFixed(2)} ms, max ${keys.max.toFixed(2)} ms (target p99 < ${TARGETS.echoP99Ms})`,
  );

  // 7. many devices with a shell each
  if (shellDevices > 0) {
    progress(`starting ${shellDevices} more agents`);
    const agents = [];
    for (let i = 1; i <= shellDevices; i++) {
      agents.push(startDevice(config, `d${i}`));
      if (i % 10 === 0) await sleep(1_000);
    }
    const online = await waitUntil(
      `${shellDevices + 1} devices to connect`,
      async () => {
        const list = await onlineDevices(server, slug);
        return list.length >= shellDevices + 1 ? list : undefined;
      },
      { timeoutMs: 300_000, intervalMs: 1_000 },
    );
    await sleep(5_000);
    const serverBefore = memoryMb(server.child.pid).rss;
    const targets = online.filter((d) => d.uuid !== device.uuid).slice(0, shellDevices);
    const t0 = performance.now();
    const shells = await shellsOnEveryDevice(server, targets);
    const openedIn = (performance.now() - t0) / 1000;
    await sleep(2_000);
    const serverWith = memoryMb(server.child.pid).rss;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const open = Number(/flotilla_remote_streams\{kind="shell"\} (\d+)/.exec(metrics)?.[1] ?? NaN);
    say(
      `${shellDevices} devices with an open shell on one node: ${shells.answered} answered a command (all opened in ${openedIn.toFixed(1)} s), ${shells.errors.length} errors${shells.errors.length ? ` (${shells.errors.slice(0, 3).join('; ')})` : ''}; ${open} shells open on the server; server RSS ${serverBefore.toFixed(0)} → ${serverWith.toFixed(0)} MB`,
    );
    for (const ws of shells.sockets) ws.close();
    await Promise.all(agents.map((child) => stop(child)));
  }
  await stop(agent);
} finally {
  for (const child of chains) child.kill();
  await stopAll();
  service.close();
  echo.close();
  rmSync(dir, { recursive: true, force: true });
}

console.log(`flotilla remote access bench, started ${started.toISOString()}, revision ${revision()}`);
console.log(
  `machine: ${cpus().length} × ${cpus()[0]?.model}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
console.log(
  `processes: client and service ends here; bin/flotilla tunnel; bin/flotilla-server; bin/flotilla-agent (its node flags); ${totalMiB} MiB per transfer`,
);
for (const line of report) console.log(`  ${line}`);
