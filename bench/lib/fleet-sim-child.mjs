// One process of bench/fleet-sim.mjs: its devices, all from one loopback source address. IPC in: {start: plan}
// (registers plan.count devices, optionally holding their WebSocket, failing over to plan.failover.urls), then 'go'
// (each device starts its rhythm at a random phase), then 'stop' (waits for requests in flight). IPC out:
// {registered}, {going}, {stats}. Bench queries at any time: 'told' → {told: [Date.now() each device was last told
// `target-changed`, or null], fetched}, 'connections' → {connections: [{node, disconnectedAt, reconnectedAt,
// redials, dialErrors}]}, 'actions' → {actions: {uuid: [action ids received]}}, {powerOff: n} → {poweredOff} (its last n
// devices close and stay away).
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
  client = httpClient(plan.url, plan.localAddress, plan.maxSockets);
  const onTargetChanged = (d) =>
    track('poll', async () => {
      const r = await d.poll();
      d.fetchedAt = Date.now();
      return r;
    });
  // Registered here (20 at once), or given already registered (plan.devices: [{uuid, key}], 50 at once).
  const step = plan.devices ? 50 : 20;
  for (let i = 0; i < plan.count; i += step) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(step, plan.count - i) }, async (_, j) => {
        const given = plan.devices?.[i + j];
        const device = given
          ? new FleetDevice(client, given.uuid, given.key)
          : await FleetDevice.register(client, plan.fleetId, plan.provisioningKey);
        if (plan.connect) {
          await device.poll();
          await device.connect({ onTargetChanged, failover: plan.failover });
        }
        return device;
      }),
    );
    devices.push(...batch);
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

// WARNING: a bench that dies without closing its fleet must not leave its devices running (and dialing) for ever.
process.on('disconnect', () => process.exit(0));

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
    } else if (message === 'told') {
      process.send({ told: devices.map((d) => d.toldAt ?? null), fetched: devices.map((d) => d.fetchedAt ?? null) });
    } else if (message === 'connections') {
      process.send({
        connections: devices
          .filter((d) => !d.closed)
          .map(({ node, disconnectedAt, reconnectedAt, redials, dialErrors }) => ({
            node,
            disconnectedAt,
            reconnectedAt,
            redials,
            dialErrors: dialErrors.slice(0, 3),
          })),
      });
    } else if (message === 'actions') {
      process.send({
        actions: Object.fromEntries(devices.filter((d) => d.actionIds.length).map((d) => [d.uuid, d.actionIds])),
      });
    } else if (message.powerOff !== undefined) {
      const off = devices.slice(devices.length - message.powerOff);
      for (const d of off) d.close();
      devices.length -= off.length;
      process.send({ poweredOff: off.length, uuids: devices.map((d) => d.uuid) });
    } else if (message === 'close') {
      for (const d of devices) d.close();
      client?.close();
      process.exit(0);
    }
  } catch (error) {
    process.send({ failed: error.message });
  }
});
