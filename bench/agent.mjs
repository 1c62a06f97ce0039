#!/usr/bin/env node
// Agent footprint bench: runs flotilla-agent (unmanaged, local target) with a 3-service app, then measures
//   1. idle RSS and CPU of the agent process over BENCH_SECONDS (default 60),
//   2. the duration of a no-op reconcile pass (engine re-read + plan, nothing to do), median and p99 over
//      BENCH_PASSES (default 300) passes, in-process through startAgent().reconcileNow().
// Targets: RSS < 60 MB, CPU < 1 % of one core, no-op pass < 20 ms. Needs a built tree (npx tsc -b) and Docker.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('..', import.meta.url).pathname;
const { startAgent, NAMESPACE_LABEL } = await import(join(root, 'packages/agent/dist/index.js'));
const { ensureBusyboxImage } = await import(join(root, 'packages/testkit/dist/index.js'));
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const passes = Number(process.env.BENCH_PASSES ?? 300);
const nonce = randomBytes(4).toString('hex');
const namespace = `bench${nonce}-`;
const image = `flotilla-agent-bench/app:${nonce}`;
const dir = mkdtempSync(join(tmpdir(), 'flotilla-agent-bench-'));
const docker = (...args) => execFileSync('docker', args, { encoding: 'utf8' });

function cleanup() {
  const ids = docker('ps', '-aq', '--filter', `label=${NAMESPACE_LABEL}=${namespace}`).split('\n').filter(Boolean);
  if (ids.length) docker('rm', '-f', ...ids);
  const nets = docker('network', 'ls', '-q', '--filter', `label=${NAMESPACE_LABEL}=${namespace}`).split('\n').filter(Boolean);
  if (nets.length) docker('network', 'rm', ...nets);
  const vols = docker('volume', 'ls', '-q', '--filter', `label=${NAMESPACE_LABEL}=${namespace}`).split('\n').filter(Boolean);
  if (vols.length) docker('volume', 'rm', ...vols);
  try { docker('rmi', image); } catch { /* already removed */ }
  rmSync(dir, { recursive: true, force: true });
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

try {
  const base = await ensureBusyboxImage();
  execFileSync('docker', ['build', '-q', '-t', image, '-'], {
    input: `FROM ${base}\nRUN echo ${nonce} > /nonce\nCMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5; done"]\n`,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const service = (id, env) => ({ id, image_id: id, image, environment: env, labels: {}, composition: {} });
  const target = {
    name: 'bench',
    config: {},
    apps: { benchapp: { id: 4242, name: 'bench', releases: { [nonce]: { id: 1, services: { web: service(1, { ROLE: 'web' }), worker: service(2, { ROLE: 'worker' }), db: { ...service(3, { ROLE: 'db' }), composition: { volumes: ['data:/data'] } } }, volumes: { data: {} } } } } },
  };
  const configPath = join(dir, 'config.json');
  const targetPath = join(dir, 'target.json');
  const dataDir = join(dir, 'data');
  writeFileSync(configPath, '{}\n');
  writeFileSync(targetPath, JSON.stringify(target));

  // ---------------------------------------------------------------------------------------- idle footprint
  const child = spawn(join(root, 'bin/flotilla-agent'), ['--config', configPath, '--data', dataDir, '--target-file', targetPath, '--namespace', namespace, '--log-level', 'warn'], { stdio: 'inherit' });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const up = docker('ps', '-q', '--filter', `label=${NAMESPACE_LABEL}=${namespace}`, '--filter', 'status=running').split('\n').filter(Boolean).length;
    if (up === 3) break;
    if (Date.now() > deadline) throw new Error('the 3 services did not start within 60 s');
    await sleep(200);
  }
  await sleep(5_000); // settle: first pass done, JIT warm
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  const cpuTicks = () => {
    const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime + stime
  };
  const statusKb = (field) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]);
  const rss = [];
  const anon = [];
  const t0 = performance.now();
  const c0 = cpuTicks();
  for (let i = 0; i < seconds; i++) {
    await sleep(1_000);
    rss.push(statusKb('VmRSS') / 1024);
    anon.push(statusKb('RssAnon') / 1024);
  }
  const cpuPercent = (100 * (cpuTicks() - c0)) / ticks / ((performance.now() - t0) / 1000);
  const up = docker('ps', '-q', '--filter', `label=${NAMESPACE_LABEL}=${namespace}`, '--filter', 'status=running').split('\n').filter(Boolean).length;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.on('exit', resolve));

  // ---------------------------------------------------------------------------------------- no-op pass time
  const agent = await startAgent({ configPath, dataDir, namespace, logLevel: 'warn', localTarget: target });
  const durations = [];
  let steps = 0;
  for (let i = 0; i < passes + 20; i++) {
    const result = await agent.reconcileNow();
    if (result.outcome.kind !== 'done') throw new Error(`pass ${i} did not converge: ${JSON.stringify(result.outcome)}`);
    steps += result.stepsExecuted;
    if (i >= 20) durations.push(result.durationMs); // the first 20 warm the JIT
  }
  await agent.stop();
  durations.sort((a, b) => a - b);
  const sortedRss = [...rss].sort((a, b) => a - b);
  const sortedAnon = [...anon].sort((a, b) => a - b);

  console.log(`flotilla-agent bench (${new Date().toISOString()}, node ${process.version}, ${seconds} s idle, ${passes} passes)`);
  console.log(`services running during idle window: ${up}/3`);
  console.log(`idle RSS MB: median ${percentile(sortedRss, 50).toFixed(1)}, max ${sortedRss.at(-1).toFixed(1)}  (target < 60)`);
  console.log(`  of which anonymous (heap, stacks; the rest is file-backed node binary/library pages): median ${percentile(sortedAnon, 50).toFixed(1)}, max ${sortedAnon.at(-1).toFixed(1)}`);
  console.log(`idle CPU: ${cpuPercent.toFixed(3)} % of one core  (target < 1)`);
  console.log(`no-op reconcile pass ms: median ${percentile(durations, 50).toFixed(2)}, p99 ${percentile(durations, 99).toFixed(2)}, max ${durations.at(-1).toFixed(2)}  (target < 20; steps executed: ${steps})`);
} finally {
  cleanup();
}
