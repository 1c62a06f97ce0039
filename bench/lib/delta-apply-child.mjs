// Applies one delta as the agent does (packages/agent/dist/deltas/apply-delta.js, the real DockerEngine), in a
// process of its own so its peak RSS is the device's. Argument: a JSON file {baseRef, delta, deltaFile, workDir, tag,
// cacheDir?} (cacheDir: the agent's layer cache, deltas/layer-cache.js, as its pulls and deltas leave it).
// Prints {seconds, phases, base, nodePeakRssMiB} on stdout (phases: seconds from the start to the end of each; base:
// how many base layers came from the cache and from docker save).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const { applyDelta } = await import(join(root, 'packages/agent/dist/deltas/apply-delta.js'));
const { LayerCache } = await import(join(root, 'packages/agent/dist/deltas/layer-cache.js'));
const { DockerEngine } = await import(join(root, 'packages/agent/dist/engine/docker-engine.js'));

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const started = process.hrtime.bigint();
const phases = {};
let base;
await applyDelta({
  ...input,
  cache: input.cacheDir ? new LayerCache(input.cacheDir, Number.MAX_SAFE_INTEGER) : undefined,
  engine: new DockerEngine('/var/run/docker.sock'),
  signal: new AbortController().signal,
  onPhase: (phase, detail) => {
    if (detail) base = detail;
    phases[phase] = Number(process.hrtime.bigint() - started) / 1e9;
  },
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ seconds, phases, base, nodePeakRssMiB: process.resourceUsage().maxRSS / 1024 }));
