#!/usr/bin/env node
// Staged-rollout bench: flotilla-server (SQLite, default settings: rollouts evaluated each second) in its own
// process, BENCH_DEVICES (1,000) simulated devices speaking the device API over HTTP, each holding the device
// WebSocket as a Flotilla agent does. A release goes out with `--rollout` BENCH_BATCHES ("1%,10%,50%,100%") and
// soak BENCH_SOAK seconds (0). Each device, told `target-changed`, fetches its target and reports it runs it healthy.
// Prints, per batch, the time from the batch's last success (its last device's report, plus the soak) to the next
// batch's devices being told (first and last), against the 2 s limit; and the server's CPU while the rollout ran.
// Needs a built tree (npx tsc -b).
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { api, startServer } from './lib/control-plane.mjs';
import { assertNodeProcess, stopAll } from './lib/children.mjs';

const root = new URL('..', import.meta.url).pathname;
const { SimulatedDevice } = await import(join(root, 'packages/server/dist/testing/index.js'));
const deviceCount = Number(process.env.BENCH_DEVICES ?? 1_000);
const batches = process.env.BENCH_BATCHES ?? '1%,10%,50%,100%';
const soakSeconds = Number(process.env.BENCH_SOAK ?? 0);
const LIMIT_MS = 2_000;
const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const cpuTicks = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-rollout-'));
const port = 20_000 + Math.floor(Math.random() * 20_000);
const server = await startServer(join(dir, 'data'), port);
assertNodeProcess(server.child.pid);
const sockets = [];
try {
  const fleet = await api(server, 'POST', '/fleets', { name: 'bench', slug: 'bench-rollout' });
  const { key } = await api(server, 'POST', '/fleets/bench-rollout/provisioning-keys', {});
  const composition = { services: { main: { image: 'busybox' }, side: { image: 'busybox' } } };
  const first = await api(server, 'POST', '/fleets/bench-rollout/releases', { composition, status: 'success' });

  // ------------------------------------------------------------------------------------------ the devices
  let t0 = performance.now();
  const devices = [];
  for (let i = 0; i < deviceCount; i += 50)
    devices.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, deviceCount - i) }, () =>
          SimulatedDevice.register(server.url, fleet.id, key),
        ),
      )),
    );
  for (let i = 0; i < devices.length; i += 50) await Promise.all(devices.slice(i, i + 50).map((d) => d.step()));
  if (!devices.every((d) => d.running === first.commit)) throw new Error('not every device runs the first release');
  console.log(
    `${deviceCount} devices registered and running the first release in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );

  // Each device: told → fetch → report. `told`: when the device was told of the change that brought it the release
  // under rollout (every device is told when the fleet's release moves, but only its batch's get it); `reported`:
  // when its report that it runs the release was answered.
  let commit;
  const told = new Map();
  const reported = new Map();
  await Promise.all(
    devices.map(
      (device) =>
        new Promise((resolve, reject) => {
          const url = new URL(`/device/v1/${device.uuid}/connect`, server.url.replace('http', 'ws'));
          const socket = new WebSocket(url, { headers: { authorization: `Bearer ${device.key}` } });
          sockets.push(socket);
          socket.on('open', resolve);
          socket.on('error', reject);
          socket.on('message', (data) => {
            if (JSON.parse(data.toString()).type !== 'target-changed') return;
            // Told now; whether this telling is the one that brings the release shows once the fetch is done.
            const at = performance.now();
            void device.step().then(() => {
              if (!commit || device.running !== commit || reported.has(device.uuid)) return;
              told.set(device.uuid, at);
              reported.set(device.uuid, performance.now());
            });
          });
        }),
    ),
  );
  console.log(`${deviceCount} device connections open`);

  // ---------------------------------------------------------------------------------------- the rollout
  const release = await api(server, 'POST', '/fleets/bench-rollout/releases', { composition, status: 'running' });
  commit = release.commit;
  const plan = batches.split(',').map((b) => Number(b.replace('%', '')));
  await api(server, 'POST', '/fleets/bench-rollout/rollouts', {
    release: release.id,
    batches: plan,
    soakSeconds,
    offlineTimeoutSeconds: 3600,
  });
  const ticks0 = cpuTicks(server.child.pid);
  t0 = performance.now();
  await api(server, 'PATCH', `/releases/${release.id}`, { status: 'success' });
  let rollout;
  const deadline = Date.now() + 120_000 + 10_000 * soakSeconds * plan.length;
  for (;;) {
    rollout = await api(server, 'GET', '/fleets/bench-rollout/rollout');
    if (rollout.status !== 'running') break;
    if (Date.now() > deadline) throw new Error(`the rollout did not complete: ${JSON.stringify(rollout.batches)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = (100 * (cpuTicks(server.child.pid) - ticks0)) / TICKS_PER_SECOND / elapsed;
  if (rollout.status !== 'completed') throw new Error(`the rollout ended ${rollout.status}: ${rollout.reason}`);
  const batchOf = new Map(rollout.devices.map((d) => [d.uuid, d.batch]));
  const uuidsOf = (b) => devices.filter((d) => batchOf.get(d.uuid) === b).map((d) => d.uuid);
  let worst = 0;
  for (let b = 0; b + 1 < rollout.batches.length; b++) {
    const successAt = Math.max(...uuidsOf(b).map((u) => reported.get(u))) + soakSeconds * 1000;
    const next = uuidsOf(b + 1).map((u) => told.get(u));
    if (next.some((t) => t === undefined)) throw new Error(`a device of batch ${b + 2} was never told`);
    const firstMs = Math.min(...next) - successAt;
    const lastMs = Math.max(...next) - successAt;
    worst = Math.max(worst, lastMs);
    console.log(
      `batch ${b + 1} (${rollout.batches[b].label}, ${uuidsOf(b).length} devices) last success → batch ${b + 2} (${rollout.batches[b + 1].label}, ${next.length} devices) told: first ${firstMs.toFixed(0)} ms, last ${lastMs.toFixed(0)} ms`,
    );
  }
  console.log(
    `rollout of ${deviceCount} devices in ${rollout.batches.length} batches (soak ${soakSeconds} s) completed in ${elapsed.toFixed(1)} s; server CPU ${cpu.toFixed(1)} % of one core over that time`,
  );
  console.log(
    `worst last-told latency ${worst.toFixed(0)} ms vs limit ${LIMIT_MS} ms: ratio ${(worst / LIMIT_MS).toFixed(2)}`,
  );
} finally {
  for (const socket of sockets) socket.terminate();
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
}
