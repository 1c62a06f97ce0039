// One process of bench/fleet-sim.mjs: its devices, all from one loopback source address. IPC in: {start: plan}
// (registers plan.count devices, optionally holding their WebSocket), then 'go' (each device starts its rhythm at a
// random phase), then 'stop' (waits for requests in flight). IPC out: {registered}, {going}, {stats}.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FleetDevice, httpClient } from './fleet-device.mjs';

let plan;
let client;
const devices = [];
const timers = [];
const inFlight = new Set();
// This process's own stalls: a reply that arrives while the loop is busy is timed late, so they inflate latencies.
const loop = monitorEventLoopDelay({ resolution: 10 });
const stats = { report: [], logs: [], poll: [], errors: 0, firstError: undefined, linesSent: 0, linesAccepted: 0 };

function track(kind, work) {
  const p = work()
    .then((r) => {
      stats[kind].push(r.ms);
      if (kind === 'logs') stats.linesAccepted += r.accepted;
    })
    .catch((error) => {
      stats.errors += 1;
      stats.firstError ??= `${kind}: ${error.message}`;
    })
    .finally(() => inFlight.delete(p));
  inFlight.add(p);
}

async function start() {
  client = httpClient(plan.url, plan.localAddress);
  for (let i = 0; i < plan.count; i += 20) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(20, plan.count - i) }, () =>
        FleetDevice.register(client, plan.fleetId, plan.provisioningKey),
      ),
    );
    for (const device of batch) {
      if (plan.connect) {
        await device.poll();
        await device.connect({ onTargetChanged: (d) => track('poll', () => d.poll()) });
      }
      devices.push(device);
    }
  }
  process.send({ registered: devices.length, uuids: devices.map((d) => d.uuid) });
}

function every(ms, fn) {
  if (!ms) return;
  for (const device of devices) {
    const first = setTimeout(() => {
      fn(device);
      timers.push(setInterval(() => fn(device), ms));
    }, Math.random() * ms);
    timers.push(first);
  }
}

process.on('message', async (message) => {
  try {
    if (message.start) {
      plan = message.start;
      await start();
    } else if (message === 'go') {
      every(plan.reportEveryMs, (d) => track('report', () => d.report()));
      every(plan.pollEveryMs, (d) => track('poll', () => d.poll()));
      every(plan.logEveryMs, (d) => {
        stats.linesSent += plan.logLines;
        track('logs', () => d.shipLogs(plan.logLines));
      });
      loop.enable();
      process.send({ going: true });
    } else if (message === 'stop') {
      for (const t of timers) clearTimeout(t);
      await Promise.allSettled([...inFlight]);
      loop.disable();
      // The histogram holds the intervals of a 10 ms timer: the delay is what exceeds it.
      const loopP99 = Math.max(0, loop.percentile(99) / 1e6 - 10);
      process.send({ stats: { ...stats, loopP99, actions: devices.reduce((n, d) => n + d.actions, 0) } });
    } else if (message === 'close') {
      for (const d of devices) d.close();
      client?.close();
      process.exit(0);
    }
  } catch (error) {
    process.send({ failed: error.message });
  }
});
