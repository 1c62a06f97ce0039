#!/usr/bin/env node
// Throughput and memory of the device's half of a TCP tunnel (packages/agent/src/remote). The agent's bundled
// RemoteAccess (what bin/flotilla-agent loads) runs in a node process of its own with the agent's node flags
// (test-support/remote-device via DeviceProcess); this process plays the relay (the agent's test relay,
// test-support/stream-relay) and both TCP ends, on loopback; once over ws:// and once over wss:// (a self-signed
// certificate the device process trusts through NODE_EXTRA_CA_CERTS).
//   down: a TCP server on the "device" writes BENCH_MIB MiB as fast as back-pressure lets it; the user side reads.
//   up:   the user side sends BENCH_MIB MiB (keeping at most 4 MiB unsent in its own WebSocket); a TCP sink reads.
//   slow: like down, but the user side reads nothing for 5 s: how much the source could write meanwhile, and the
//         device process's RSS then against its RSS before that stream.
// Figures: MiB/s over each whole transfer (every byte counted at the far end), the device process's RSS and peak.
// Run: `node bench/remote-tunnel.mjs` from the repository root after `npm run build`. Env: BENCH_MIB (1024);
// FLOTILLA_AGENT_NODE_FLAGS replaces the agent's node flags, as for bin/flotilla-agent.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('..', import.meta.url).pathname;
const dist = `${root}packages/agent/dist`;
const MiB = 1024 * 1024;
const total = Number(process.env.BENCH_MIB ?? 1024) * MiB;
const { StreamRelay } = await import(`${dist}/test-support/stream-relay.js`);
const { DeviceProcess, loopbackCertificate } = await import(`${dist}/test-support/device-process.js`);
const chunk = readdirSync(`${dist}/bundle`).find((f) => f.startsWith('remote-access-') && f.endsWith('.mjs'));
if (!chunk) throw new Error('no remote-access chunk in packages/agent/dist/bundle: run npm run build');
const flags = (process.env.FLOTILLA_AGENT_NODE_FLAGS ?? readFileSync(`${root}packages/agent/node-flags`, 'utf8'))
  .trim()
  .split(/\s+/)
  .filter(Boolean);
const block = randomBytes(64 * 1024);
const mb = (pid, field) =>
  Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;

async function tunnel(relay, device, onConnection) {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const message = relay.message({ kind: 'tcp', port: server.address().port });
  device.open(message);
  const peer = await relay.peer(message.id);
  peer.onBytes = () => undefined;
  return { peer, server };
}

async function down(relay, device, pauseMs) {
  const progress = { written: 0 };
  const produce = (socket) => {
    const more = () => {
      while (progress.written < total) {
        progress.written += block.length;
        if (!socket.write(block)) return void socket.once('drain', more);
      }
      socket.end();
    };
    more();
  };
  const rssBefore = mb(device.pid, 'VmRSS');
  const { peer, server } = await tunnel(relay, device, produce);
  const started = performance.now();
  let held;
  if (pauseMs > 0) {
    peer.ws.pause();
    await sleep(pauseMs);
    held = { written: progress.written / MiB, rss: mb(device.pid, 'VmRSS'), rssBefore };
    peer.ws.resume();
  }
  await peer.control('eof', 600_000);
  const seconds = (performance.now() - started - pauseMs) / 1000;
  server.close();
  if (peer.received !== total) throw new Error(`received ${peer.received} of ${total} bytes`);
  return { rate: total / MiB / seconds, held };
}

async function up(relay, device) {
  let got = 0;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  const { peer, server } = await tunnel(relay, device, (socket) => {
    socket.on('data', (d) => {
      got += d.length;
    });
    socket.on('end', () => {
      socket.end();
      finish();
    });
  });
  await peer.control('ready');
  const started = performance.now();
  for (let sent = 0; sent < total; sent += block.length) {
    while (peer.ws.bufferedAmount > 4 * MiB) await sleep(1);
    peer.ws.send(block);
  }
  peer.send({ type: 'eof' });
  await finished;
  const seconds = (performance.now() - started) / 1000;
  server.close();
  if (got !== total) throw new Error(`the sink got ${got} of ${total} bytes`);
  return { rate: total / MiB / seconds };
}

async function measure(label, tls) {
  const relay = await StreamRelay.start(tls ? { tls } : {});
  const env = {
    FLOTILLA_REMOTE_MODULE: `${dist}/bundle/${chunk}`,
    ...(tls ? { NODE_EXTRA_CA_CERTS: tls.certFile } : {}),
  };
  const device = await DeviceProcess.start(relay, { env, nodeFlags: flags });
  try {
    const idle = mb(device.pid, 'VmRSS');
    const d = await down(relay, device, 0);
    const u = await up(relay, device);
    const s = await down(relay, device, 5_000);
    console.log(`${label}: device process idle RSS ${idle.toFixed(1)} MB`);
    console.log(`  down (device → user)   ${d.rate.toFixed(0)} MiB/s`);
    console.log(`  up   (user → device)   ${u.rate.toFixed(0)} MiB/s`);
    console.log(
      `  slow user, 5 s unread  the source wrote ${s.held.written.toFixed(1)} MiB of ${total / MiB}; device RSS ` +
        `${s.held.rss.toFixed(1)} MB (${s.held.rssBefore.toFixed(1)} MB before that stream); then ${s.rate.toFixed(0)} MiB/s`,
    );
    console.log(`  device peak RSS        ${mb(device.pid, 'VmHWM').toFixed(1)} MB`);
  } finally {
    await device.stop();
    await relay.close();
  }
}

console.log(`node flags of the device process: ${flags.join(' ') || '(none)'}; ${total / MiB} MiB per transfer`);
await measure('ws:// ', undefined);
const tls = await loopbackCertificate();
try {
  await measure('wss://', tls);
} finally {
  await tls.remove();
}
