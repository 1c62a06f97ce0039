#!/usr/bin/env node
// Bytes that cross the link for one image layer when the link is cut mid-way, with the agent's own pull
// (packages/agent/dist/pull/resumable-pull.js: Range resume into the data folder) and with `docker pull`.
// A real flotilla-server on loopback holds an image with one incompressible payload layer (BENCH_LAYER_MIB, default
// 32 MiB, FROM the busybox test base, whose layer the engine already has); a loopback proxy in front of it counts
// the body bytes of every blob download and injects the faults:
//   1. cuts: every connection carrying a layer is cut after BENCH_CUT_MIB (default 8) MiB;
//   2. restart: the pull is stopped once half the layer has passed (the agent's pull aborted, as a restart does,
//      then a new one started on the same data folder; `docker pull` killed, then run again).
// Run: `node bench/resumable-pull.mjs` from the repository root after `npx tsc -b`, with Docker running.
// Bytes are counted as the proxy hands them to the puller's connection (at the pace it reads them); on a stop, what
// was still in the loopback socket's buffers never reached the puller and crosses the link again after the restart.
// Progress goes to stderr, the report (markdown) to stdout.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stopAll } from './lib/children.mjs';
import { api, startServer } from './lib/control-plane.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const testkit = await import(join(root, 'packages/testkit/dist/index.js'));
const { ResumablePull } = await import(join(root, 'packages/agent/dist/pull/resumable-pull.js'));
const { DockerEngine } = await import(join(root, 'packages/agent/dist/engine/docker-engine.js'));
const { deltaTag } = await import(join(root, 'packages/agent/dist/deltas/delta-tag.js'));

const MIB = 1024 * 1024;
const LAYER_MIB = Number(process.env.BENCH_LAYER_MIB ?? 32);
const CUT_MIB = Number(process.env.BENCH_CUT_MIB ?? 8);
const log = (message) => process.stderr.write(`${message}\n`);
const work = mkdtempSync(join(tmpdir(), 'flotilla-bench-pull-'));
const dockerConfig = join(work, 'docker-config');
mkdirSync(dockerConfig);
const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
// WARNING: asynchronous, never execFileSync: the proxy runs in this process and must answer while docker waits.
const docker = (args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile('docker', args, { encoding: 'utf8', env, maxBuffer: 1 << 26 }, (error, stdout, stderr) =>
      error ? reject(new Error(`docker ${args[0]}: ${stderr.trim() || error.message}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin.end(input);
  });

/**
 * A loopback proxy to the server. Counts the body bytes of blob GETs larger than 1 MiB (the payload layer); while
 * `cutAfter` is set, each such answer is cut after that many bytes; `onLayerBytes` sees the running total.
 */
function proxy(upstreamPort) {
  const state = { bytes: 0, requests: 0, length: 0, cutAfter: undefined, onLayerBytes: () => undefined };
  const server = createServer((req, res) => {
    const out = request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        const layer =
          req.method === 'GET' &&
          /\/blobs\/sha256:/.test(req.url ?? '') &&
          (Number(answer.headers['content-length'] ?? 0) > MIB || req.headers.range !== undefined);
        if (!layer) return void answer.pipe(res);
        state.requests += 1;
        if (answer.statusCode === 200) state.length = Number(answer.headers['content-length']);
        let passed = 0;
        answer.on('data', (chunk) => {
          const room = state.cutAfter === undefined ? chunk.length : Math.max(0, state.cutAfter - passed);
          const part = chunk.subarray(0, room);
          passed += part.length;
          state.bytes += part.length;
          // Only as fast as the puller reads: bytes queued here would be counted without ever reaching it.
          if (!res.write(part)) {
            answer.pause();
            res.once('drain', () => answer.resume());
          }
          state.onLayerBytes(state.bytes);
          if (part.length < chunk.length) {
            answer.destroy();
            res.socket?.end();
          }
        });
        answer.on('end', () => res.end());
      },
    );
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, state, port: server.address().port })),
  );
}

const rows = [];
try {
  const base = await testkit.ensureBusyboxImage();
  const port = await testkit.freePort();
  const server = await startServer(join(work, 'server'), port);
  await api(server, 'POST', '/fleets', { name: 'bench', slug: 'bench' });
  const front = await proxy(port);
  const host = `127.0.0.1:${front.port}`;
  await docker(['login', host, '-u', 'admin', '--password-stdin'], server.apiKey);
  const context = join(work, 'context');
  mkdirSync(context);
  writeFileSync(join(context, 'payload'), randomBytes(LAYER_MIB * MIB));
  writeFileSync(join(context, 'Dockerfile'), [`FROM ${base}`, 'COPY payload /payload'].join('\n'));
  const local = `flotilla-bench/pull:${randomBytes(4).toString('hex')}`;
  log(`building a ${LAYER_MIB} MiB layer`);
  execFileSync('docker', ['build', '-q', '-t', local, context], { stdio: ['ignore', 'ignore', 'inherit'] });
  const id = (await docker(['image', 'inspect', '-f', '{{.Id}}', local])).trim();
  await docker(['tag', local, `${host}/bench/pull:x`]);
  const digest = /digest: (sha256:[0-9a-f]{64})/.exec(await docker(['push', `${host}/bench/pull:x`]))?.[1];
  const ref = `${host}/bench/pull@${digest}`;
  const removeLocal = () => {
    for (const r of [local, `${host}/bench/pull:x`, ref, deltaTag(ref), id])
      execFileSync('docker', ['rmi', '-f', r], { stdio: 'ignore' });
  };
  removeLocal();
  const agentPull = (dataDir) =>
    new ResumablePull({
      engine: new DockerEngine(),
      log: pino({ level: 'silent' }),
      dataDir,
      namespace: 'bench-',
      registryAuth: () => ({ username: 'admin', password: server.apiKey, serveraddress: host }),
      registryBase: (h) => new URL(`http://${h}`),
      downloadAttempts: 100,
    });
  const measure = async (name, fault, fn) => {
    front.state.bytes = 0;
    front.state.requests = 0;
    front.state.cutAfter = fault === 'cuts' ? CUT_MIB * MIB : undefined;
    front.state.onLayerBytes = () => undefined;
    const started = process.hrtime.bigint();
    await fn();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const loaded = (await docker(['image', 'inspect', '-f', '{{.Id}}', deltaTag(ref)])).trim();
    rows.push({ name, fault, bytes: front.state.bytes, requests: front.state.requests, seconds, ok: loaded === id });
    removeLocal();
  };
  const dockerPull = async (name, fault) =>
    measure(name, fault, async () => {
      if (fault === 'restart') {
        const child = spawn('docker', ['pull', ref], { env, stdio: 'ignore' });
        await new Promise((resolve) => {
          front.state.onLayerBytes = (bytes) => {
            if (bytes >= front.state.length / 2) resolve(child.kill('SIGKILL'));
          };
        });
        front.state.onLayerBytes = () => undefined;
        await new Promise((resolve) => child.on('exit', resolve));
      }
      await docker(['pull', ref]);
      await docker(['tag', ref, deltaTag(ref)]);
    });

  log('agent pull, link cut repeatedly');
  await measure('agent pull (Range resume)', 'cuts', async () => {
    const dir = join(work, 'agent-cuts');
    if (!(await agentPull(dir).pull(ref, AbortSignal.timeout(300_000)))) throw new Error('the agent pull fell back');
  });
  log('agent pull, stopped half-way and started again');
  await measure('agent pull (Range resume)', 'restart', async () => {
    const dir = join(work, 'agent-restart');
    const stopper = new AbortController();
    front.state.onLayerBytes = (bytes) => bytes >= front.state.length / 2 && stopper.abort(new Error('restart'));
    await agentPull(dir)
      .pull(ref, stopper.signal)
      .catch(() => undefined);
    front.state.onLayerBytes = () => undefined;
    if (!(await agentPull(dir).pull(ref, AbortSignal.timeout(300_000)))) throw new Error('the agent pull fell back');
  });
  log('docker pull, link cut repeatedly');
  await dockerPull('docker pull (engine)', 'cuts').catch((error) => {
    rows.push({ name: 'docker pull (engine)', fault: 'cuts', failed: String(error.message).split('\n')[0] });
  });
  log('docker pull, killed half-way and run again');
  await dockerPull('docker pull (engine)', 'restart');

  const layerBytes = front.state.length;
  process.stdout.write(
    [
      `# Resumable pulls (${revision()})`,
      '',
      `One ${(layerBytes / MIB).toFixed(1)} MiB layer blob (${layerBytes} bytes) over a loopback proxy; cuts: every connection cut after ${CUT_MIB} MiB; restart: the pull stopped once half the layer passed, then started again.`,
      '',
      '| pull | fault | layer bytes over the link | / layer size | layer requests | seconds | image ID as pushed |',
      '|---|---|---|---|---|---|---|',
      ...rows.map((r) =>
        r.failed
          ? `| ${r.name} | ${r.fault} | failed: ${r.failed} | | | | |`
          : `| ${r.name} | ${r.fault} | ${r.bytes} | ${(r.bytes / layerBytes).toFixed(2)} | ${r.requests} | ${r.seconds.toFixed(1)} | ${r.ok ? 'yes' : 'NO'} |`,
      ),
      '',
    ].join('\n'),
  );
  front.server.close();
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
