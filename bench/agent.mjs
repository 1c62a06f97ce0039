#!/usr/bin/env node
// Agent footprint bench (issue 4 targets: idle RSS < 60 MB, idle CPU < 1 % of one core, no-op pass < 20 ms).
// Runs, in order, each with a 3-service app (web, worker, db with a named volume) on the local Docker engine:
//   1. MANAGED, the headline figure: flotilla-server on loopback, the project deployed with the real CLI
//      (`flotilla login` + `flotilla deploy`), then bin/flotilla-agent provisioned from the fleet's config.json with
//      its device API on. Once the 3 containers run and the device reports the release, it settles 10 s, then
//      samples the agent's /proc status (VmRSS, RssAnon) and CPU time once a second for BENCH_SECONDS (60).
//   2. UNMANAGED: bin/flotilla-agent --target-file (no control plane), same app, same sampling.
//   3. No-op reconcile pass (engine re-read + plan, nothing to do): startAgent(...).reconcileNow() in-process over
//      the unmanaged target, median/p99/max over BENCH_PASSES (300) after 20 warm-up passes. So that the pass is
//      timed under the node flags devices run with (packages/agent/node-flags, what bin/flotilla-agent uses), the
//      bench re-runs itself under those flags when started without them.
// Run: `node bench/agent.mjs` from the repository root, with a built tree (npx tsc -b) and Docker running.
// BENCH_TRACE=1 also prints every per-second sample. Progress goes to stderr, the report to stdout.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertAlive, assertNodeProcess, cleanupOnce, launch, stop, stopAll, waitUntil } from './lib/children.mjs';
import { api, cli, startServer, writeComposeProject } from './lib/control-plane.mjs';
import { buildImage, removeImages, removeNamespace, runningContainers } from './lib/docker.mjs';
import { measureIdle, summarize } from './lib/proc-sampler.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;

const deviceFlags = readFileSync(join(root, 'packages/agent/node-flags'), 'utf8').trim().split(/\s+/).filter(Boolean);
if (process.execArgv.join(' ') !== deviceFlags.join(' ')) {
  const rerun = spawnSync(process.execPath, [...deviceFlags, ...process.argv.slice(1)], { stdio: 'inherit' });
  process.exit(rerun.status ?? 1);
}
const { startAgent } = await import(join(root, 'packages/agent/dist/index.js'));
const { ensureBusyboxImage, freePort } = await import(join(root, 'packages/testkit/dist/index.js'));

const TARGETS = { rssMb: 60, cpuPercent: 1, passMs: 20 };
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const passes = Number(process.env.BENCH_PASSES ?? 300);
const trace = process.env.BENCH_TRACE === '1';
const SETTLE_SECONDS = 10;
const nonce = randomBytes(4).toString('hex');
const dir = mkdtempSync(join(tmpdir(), 'flotilla-agent-bench-'));
const namespaces = { managed: `bench${nonce}m-`, unmanaged: `bench${nonce}u-` };
const unmanagedImage = `flotilla-agent-bench/app:${nonce}`;
/** Set once the server is up: every image under this registry host was built or pulled by this bench. */
let registryHost;
let inProcessAgent;
const progress = (message) => process.stderr.write(`bench: ${message}\n`);

// ----------------------------------------------------------------------------------------------- idle footprint
/**
 * Starts bin/flotilla-agent with `args`, waits until its 3 containers run and `ready()` holds, lets it settle, then
 * measures it; the agent is stopped before returning. `alive()` throws if something it depends on has died.
 */
async function idleRun(namespace, args, { ready = () => true, alive = () => undefined } = {}) {
  const agent = launch('flotilla-agent', [
    ...args,
    '--namespace',
    namespace,
    '--api-address',
    '127.0.0.1',
    '--api-port',
    String(await freePort()),
    '--log-level',
    'warn',
  ]);
  try {
    const aliveAll = () => {
      alive();
      assertAlive(agent, 'flotilla-agent');
    };
    await waitUntil('the 3 services to run', () => runningContainers(namespace) === 3, {
      timeoutMs: 180_000,
      alive: aliveAll,
    });
    const readiness = await waitUntil('the agent to be ready', ready, { timeoutMs: 120_000, alive: aliveAll });
    const exe = assertNodeProcess(agent.pid); // after the waits: the wrapper has long exec'd node by now
    progress(`pid ${agent.pid} (${exe}) converged; settling ${SETTLE_SECONDS} s, then sampling for ${seconds} s`);
    await sleep(SETTLE_SECONDS * 1000);
    const measured = await measureIdle(agent.pid, seconds);
    aliveAll();
    return { pid: agent.pid, readiness, ...measured, servicesAfter: runningContainers(namespace), load: loadavg() };
  } finally {
    await stop(agent);
  }
}

/** Server, fleet, `flotilla deploy` of the 3-service project, then the agent provisioned from config.json. */
async function measureManaged(base) {
  const port = await freePort();
  progress(`starting flotilla-server on port ${port}`);
  const server = await startServer(join(dir, 'server'), port);
  registryHost = `127.0.0.1:${port}`;
  try {
    const slug = `bench-${nonce}`;
    await api(server, 'POST', '/fleets', { name: 'Agent bench', slug, deviceType: 'generic-amd64' });
    const configPath = join(dir, 'managed-config.json');
    writeFileSync(
      configPath,
      JSON.stringify(await api(server, 'POST', `/fleets/${slug}/config-json`, { developmentMode: true }), null, 2),
    );

    const cliDir = join(dir, 'cli');
    const project = join(dir, 'project');
    writeComposeProject(project, base, { web: [], worker: [], db: ['data:/data'] }, ['data']);
    await cli(cliDir, ['login', '--url', server.url, '--api-key', server.apiKey]);
    progress('deploying the 3-service project with bin/flotilla deploy');
    const { release } = JSON.parse(await cli(cliDir, ['deploy', slug, project, '--json']));

    // Ready once the device reports the release as fully applied: the report path has run at least once.
    const reportsRelease = async () => {
      const [listed] = (await api(server, 'GET', `/devices?fleet=${slug}`)).items;
      if (!listed) return false;
      const device = await api(server, 'GET', `/devices/${listed.uuid}`);
      return device.runningRelease === release.commit && device.isOnline ? device : false;
    };
    progress('starting the managed agent');
    const result = await idleRun(namespaces.managed, ['--config', configPath, '--data', join(dir, 'managed-device')], {
      ready: reportsRelease,
      alive: server.alive,
    });
    return { ...result, release: release.version, device: result.readiness };
  } finally {
    await stop(server.child);
  }
}

/** The 3-service app as a local target state, as `--target-file` and startAgent({ localTarget }) take it. */
function unmanagedTarget() {
  const service = (id, role, composition = {}) => ({
    id,
    image_id: id,
    image: unmanagedImage,
    environment: { ROLE: role },
    labels: {},
    composition,
  });
  const services = {
    web: service(1, 'web'),
    worker: service(2, 'worker'),
    db: service(3, 'db', { volumes: ['data:/data'] }),
  };
  return {
    name: 'bench',
    config: {},
    apps: { benchapp: { id: 4242, name: 'bench', releases: { [nonce]: { id: 1, services, volumes: { data: {} } } } } },
  };
}

async function measureUnmanaged(base, target) {
  buildImage(
    unmanagedImage,
    `FROM ${base}\nRUN echo ${nonce} > /nonce\nCMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 5 & wait $!; done"]\n`,
  );
  const targetPath = join(dir, 'target.json');
  writeFileSync(targetPath, JSON.stringify(target));
  progress('starting the unmanaged agent');
  return idleRun(namespaces.unmanaged, [
    '--config',
    join(dir, 'unmanaged-config.json'),
    '--data',
    join(dir, 'unmanaged-device'),
    '--target-file',
    targetPath,
  ]);
}

// ----------------------------------------------------------------------------------------------- no-op pass time
async function measureNoOpPass(target) {
  progress(`timing ${passes} no-op passes in-process`);
  inProcessAgent = await startAgent({
    configPath: join(dir, 'unmanaged-config.json'),
    dataDir: join(dir, 'unmanaged-device'),
    namespace: namespaces.unmanaged,
    logLevel: 'warn',
    localTarget: target,
    apiPort: 0,
  });
  const durations = [];
  let steps = 0;
  for (let i = 0; i < passes + 20; i++) {
    const result = await inProcessAgent.reconcileNow();
    if (result.outcome.kind !== 'done')
      throw new Error(`pass ${i} did not converge: ${JSON.stringify(result.outcome)}`);
    steps += result.stepsExecuted;
    if (i >= 20) durations.push(result.durationMs); // the first 20 warm the JIT
  }
  await inProcessAgent.stop();
  inProcessAgent = undefined;
  return { ...summarize(durations), steps };
}

// ----------------------------------------------------------------------------------------------------- report
const mb = (n) => n.toFixed(1);
const verdict = (value, target) => (value < target ? 'ok' : 'OVER');
const loadText = (load) => load.map((l) => l.toFixed(2)).join(' ');

function printIdle(title, run) {
  const rss = summarize(run.samples.map((s) => s.rss));
  const anon = summarize(run.samples.map((s) => s.anon));
  const file = summarize(run.samples.map((s) => s.file));
  const cpu = summarize(run.samples.map((s) => s.cpu));
  const window = Math.min(10, run.samples.length);
  const early = summarize(run.samples.slice(0, window).map((s) => s.rss)).median;
  const late = summarize(run.samples.slice(-window).map((s) => s.rss)).median;
  console.log(`\n${title}`);
  console.log(
    `  services running after the idle window: ${run.servicesAfter}/3; agent pid ${run.pid}; load average at the end ${loadText(run.load)}`,
  );
  console.log(
    `  idle RSS MB: median ${mb(rss.median)}, min ${mb(rss.min)}, max ${mb(rss.max)}  (target < ${TARGETS.rssMb}: ${verdict(rss.median, TARGETS.rssMb)})`,
  );
  console.log(
    `    of which anonymous (heap, stacks): median ${mb(anon.median)}, max ${mb(anon.max)}; file-backed (node binary, libraries): median ${mb(file.median)}`,
  );
  console.log(
    `    trend: median of the first ${window} s ${mb(early)}, of the last ${window} s ${mb(late)} (${late >= early ? '+' : ''}${mb(late - early)})`,
  );
  console.log(
    `  idle CPU: ${run.cpuPercent.toFixed(3)} % of one core over ${run.samples.length} s  (target < ${TARGETS.cpuPercent}: ${verdict(run.cpuPercent, TARGETS.cpuPercent)}); busiest second ${cpu.max.toFixed(1)} %, one clock tick = ${run.tickMs} ms`,
  );
  if (trace) {
    run.samples.forEach((s, i) => {
      console.log(
        `    t=${String(i + 1).padStart(3)} s  rss ${mb(s.rss)}  anon ${mb(s.anon)}  file ${mb(s.file)}  cpu ${s.cpu.toFixed(1)} %`,
      );
    });
  }
}

function printReport(start, managed, unmanaged, pass) {
  console.log(`flotilla-agent bench, started ${start.date.toISOString()}, revision ${revision()}`);
  console.log(
    `node ${process.version}, ${cpus().length} CPUs, load average at the start ${loadText(start.load)}; ${seconds} s idle windows after ${SETTLE_SECONDS} s settling, ${passes} passes`,
  );
  printIdle(
    `MANAGED agent (headline): control plane on loopback, device API on, release ${managed.release} reported by device ${managed.device.uuid.slice(0, 7)}`,
    managed,
  );
  printIdle('UNMANAGED agent: --target-file, no control plane, device API on', unmanaged);
  console.log(
    `\nNO-OP reconcile pass (in-process, unmanaged target, engine re-read + plan; node flags: ${process.execArgv.join(' ') || 'none'})`,
  );
  console.log(
    `  ms: median ${pass.median.toFixed(2)}, p99 ${pass.p99.toFixed(2)}, max ${pass.max.toFixed(2)}  (target < ${TARGETS.passMs}: ${verdict(pass.p99, TARGETS.passMs)} at p99; steps executed: ${pass.steps})`,
  );
}

// ---------------------------------------------------------------------------------------------------- cleanup
const cleanup = cleanupOnce(async () => {
  await inProcessAgent?.stop().catch(() => undefined);
  await stopAll();
  const failures = [
    ...removeNamespace(namespaces.managed),
    ...removeNamespace(namespaces.unmanaged),
    ...removeImages(
      (ref) => ref === unmanagedImage || (registryHost !== undefined && ref.startsWith(`${registryHost}/`)),
    ),
  ];
  rmSync(dir, { recursive: true, force: true });
  return failures;
}, progress);

try {
  const start = { date: new Date(), load: loadavg() };
  const base = await ensureBusyboxImage();
  writeFileSync(join(dir, 'unmanaged-config.json'), '{}\n');
  mkdirSync(join(dir, 'unmanaged-device'));
  const managed = await measureManaged(base);
  removeNamespace(namespaces.managed); // its containers would otherwise idle next to the unmanaged run
  const target = unmanagedTarget();
  const unmanaged = await measureUnmanaged(base, target);
  const pass = await measureNoOpPass(target);
  printReport(start, managed, unmanaged, pass);
} finally {
  await cleanup();
}
