// Applies one delta as the agent does (packages/agent/dist/deltas/apply-delta.js, the real DockerEngine), in a
// process of its own so its peak RSS is the device's. Argument: a JSON file {baseRef, delta, deltaFile, workDir, tag}.
// Prints {seconds, phases, nodePeakRssMiB} on stdout (phases: seconds from the start to the end of each).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const { applyDelta } = await import(join(root, 'packages/agent/dist/deltas/apply-delta.js'));
const { DockerEngine } = await import(join(root, 'packages/agent/dist/engine/docker-engine.js'));

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const started = process.hrtime.bigint();
const phases = {};
await applyDelta({
  ...input,
  engine: new DockerEngine('/var/run/docker.sock'),
  signal: new AbortController().signal,
  onPhase: (phase) => {
    phases[phase] = Number(process.hrtime.bigint() - started) / 1e9;
  },
});
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(JSON.stringify({ seconds, phases, nodePeakRssMiB: process.resourceUsage().maxRSS / 1024 }));
