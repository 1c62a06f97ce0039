// Preloaded into flotilla-server by bench/fleet-sim.mjs (NODE_OPTIONS=--import), so any build of the server, old or
// new, is measured from inside the same way: the time each request spends in the server (from its headers parsed
// to its last byte written: `http.server.request.start` to `http.server.response.finish`), the event loop's delay
// (perf_hooks monitorEventLoopDelay) and the garbage collector's pauses. The difference between these and what the
// simulated devices observe is the time a request waited outside the server: in the client's socket pool, in the
// kernel, or for a core while the simulator had both.
// SIGUSR2 once: forget everything so far (registration) and start counting; SIGUSR2 again: write what was counted to
// FLEET_PROBE_OUT as JSON. With FLEET_PROBE_PROFILE=<dir>, the same window is CPU-profiled (the inspector's profiler,
// as `node --cpu-prof` does, which NODE_OPTIONS may not carry) into <dir>/server-<pid>.cpuprofile.
import { subscribe } from 'node:diagnostics_channel';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';

const out = process.env.FLEET_PROBE_OUT;
const profileDir = process.env.FLEET_PROBE_PROFILE;
const profiler = profileDir ? new Session() : undefined;
profiler?.connect();
const post = (method, params) =>
  new Promise((resolve, reject) =>
    profiler.post(method, params, (error, result) => (error ? reject(error) : resolve(result))),
  );
const RESOLUTION_MS = 10;
const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
const started = new WeakMap();
let counting = false;
let latencies = { logs: [], report: [], other: [] };
let gc = [];
let cpuAtStart;

subscribe('http.server.request.start', ({ request, response }) => {
  if (counting) started.set(response, { at: performance.now(), method: request.method, url: request.url });
});
subscribe('http.server.response.finish', ({ response }) => {
  const start = started.get(response);
  if (!start) return;
  const kind = start.url.endsWith('/log-stream') ? 'logs' : start.method === 'PATCH' ? 'report' : 'other';
  latencies[kind].push(performance.now() - start.at);
});
new PerformanceObserver((list) => {
  if (counting) for (const entry of list.getEntries()) gc.push(entry.duration);
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  if (!counting) {
    counting = true;
    latencies = { logs: [], report: [], other: [] };
    gc = [];
    loop.reset();
    loop.enable();
    cpuAtStart = process.cpuUsage();
    if (profiler) void post('Profiler.enable').then(() => post('Profiler.start'));
    return;
  }
  counting = false;
  loop.disable();
  // The histogram holds the intervals between the runs of a RESOLUTION_MS timer: the delay is what exceeds that.
  const ms = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  const cpu = process.cpuUsage(cpuAtStart);
  const stats = {
    cpuMs: (cpu.user + cpu.system) / 1000,
    latencies,
    gc,
    loop: {
      p50: ms(loop.percentile(50)),
      p99: ms(loop.percentile(99)),
      p999: ms(loop.percentile(99.9)),
      max: ms(loop.max),
      count: loop.count,
    },
  };
  const write = () => {
    if (out) writeFileSync(out, JSON.stringify(stats));
  };
  if (!profiler) return write();
  void post('Profiler.stop').then(({ profile }) => {
    mkdirSync(profileDir, { recursive: true });
    writeFileSync(join(profileDir, `server-${process.pid}.cpuprofile`), JSON.stringify(profile));
    write();
  });
});
