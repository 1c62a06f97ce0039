#!/usr/bin/env node
// Delta figures for issue 14's three scenarios, each an image pair built FROM the debootstrapped Debian base
// (flotilla-test/debian:bookworm) and pushed to a real flotilla-server:
//   1. a Python app whose Dockerfile copies its source before `apt-get install python3`, one source line changed
//      (the dependency layer is rebuilt, nearly identical);
//   2. the base image's packages upgraded: the base layer is Debian with `apt-get upgrade` from bookworm-security
//      (squashed into one layer, as a new base image release is), the same app on top;
//   3. one dependency bumped: openssl and libssl3 from bookworm-security instead of bookworm, the rest unchanged;
//   4. a 500 MB image: the Debian base and a generated application data tree (bench/lib/generated-tree.mjs: text,
//      binaries, media-like files, compressing like real ones), changed as a release would (edited text, rebuilt
//      binaries, replaced media). The issue's memory budget: the device's peak RSS must stay under 256 MB here.
// Figures per scenario:
//   - plain pull: the compressed bytes of B's layers A lacks, as B's manifest lists them (what docker pull fetches);
//   - Flotilla delta: bytes of the delta the server's own code (packages/server/dist/deltas/compute-delta.js)
//     computes from its registry, and the time it takes;
//   - zstd floor: `zstd -19 --long --patch-from` of B's new layers (uncompressed, concatenated) against all of A's;
//   - device: the agent's own apply code (packages/agent/dist/deltas/apply-delta.js) in a process of its own, on
//     the real engine, B absent and A present: wall time, the node process's peak RSS, and the peak RSS of the
//     largest process (node or xdelta3, /usr/bin/time); beside it, the time of `docker pull` of B over loopback.
//     Twice: with no layer cache (A's layers read from `docker save`), then with the agent's layer cache holding A's
//     layers as its own pull of A leaves them (no `docker save`); phases: reading A's layers, rebuild + `docker load`,
//     the loaded image's ID check.
// Run: `node bench/delta.mjs` from the repository root after `npm run build` (or `npx tsc -b`), with Docker running,
// xdelta3 and zstd on PATH and the Debian mirror reachable from containers. BENCH_SCENARIOS=1,3 picks scenarios
// (default 1,2,3,4); BENCH_FLOOR=0 skips the zstd floor (minutes of zstd -19 per scenario) when only the apply matters.
// Progress goes to stderr, the report (markdown) to stdout.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stopAll } from './lib/children.mjs';
import { api, startServer } from './lib/control-plane.mjs';
import { ALGORITHMS, concat, savedImage } from './lib/delta-measure.mjs';
import { changeTree, writeTree } from './lib/generated-tree.mjs';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const testkit = await import(join(root, 'packages/testkit/dist/index.js'));
const { computeDelta } = await import(join(root, 'packages/server/dist/deltas/compute-delta.js'));
const { DeltaStore } = await import(join(root, 'packages/server/dist/deltas/delta-store.js'));
const { LayerCache } = await import(join(root, 'packages/agent/dist/deltas/layer-cache.js'));
const { RegistryStorage } = await import(join(root, 'packages/server/dist/registry/storage.js'));

const chosen = (process.env.BENCH_SCENARIOS ?? '1,2,3,4').split(',').map(Number);
const log = (message) => process.stderr.write(`${message}\n`);
const work = mkdtempSync(join(tmpdir(), 'flotilla-bench-delta-'));
const dockerConfig = join(work, 'docker-config');
mkdirSync(dockerConfig);
const env = { ...process.env, DOCKER_CONFIG: dockerConfig };
const docker = (args, input) =>
  execFileSync('docker', args, { encoding: 'utf8', input, env, stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
const seconds = (fn) => {
  const started = process.hrtime.bigint();
  const value = fn();
  return { value, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
};

/** The host's bookworm-security source, from apt's own configuration (never a hard-coded mirror). */
async function securitySource() {
  const { existsSync, readFileSync, readdirSync } = await import('node:fs');
  const sources = [];
  for (const name of readdirSync('/etc/apt/sources.list.d')) {
    const text = readFileSync(join('/etc/apt/sources.list.d', name), 'utf8');
    sources.push(...(name.endsWith('.sources') ? testkit.parseDeb822(text) : testkit.parseOneLine(text)));
  }
  if (existsSync('/etc/apt/sources.list'))
    sources.push(...testkit.parseOneLine(readFileSync('/etc/apt/sources.list', 'utf8')));
  const found = sources.find((s) => s.suite === 'bookworm-security');
  if (!found) throw new Error('no bookworm-security source in /etc/apt: scenarios 2 and 3 need one');
  return `deb ${found.uri} bookworm-security main`;
}

function build(tag, dockerfile, files = {}) {
  const context = join(work, `ctx-${tag.replace(/\W/g, '_')}`);
  mkdirSync(context, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(context, name, '..'), { recursive: true });
    writeFileSync(join(context, name), content);
  }
  writeFileSync(join(context, 'Dockerfile'), dockerfile.join('\n'));
  log(`building ${tag}`);
  execFileSync('docker', ['build', '-q', '-t', tag, context], { stdio: ['ignore', 'ignore', 'inherit'] });
  return tag;
}

const app = (line) => ({ 'app/main.py': `import sys\nprint(${JSON.stringify(line)})\nsys.exit(0)\n` });
const INSTALL = 'apt-get update && apt-get install -y --no-install-recommends python3';
const CLEAN = 'rm -rf /var/lib/apt/lists/*';

async function scenarios(base) {
  const security = chosen.some((n) => n !== 1) ? await securitySource() : '';
  const list = [];
  if (chosen.includes(1))
    list.push({
      name: '1. app source changed (dependency layer rebuilt)',
      a: () => build('bench-delta/s1:a', [`FROM ${base}`, 'COPY app /app', `RUN ${INSTALL} && ${CLEAN}`], app('A')),
      b: () => build('bench-delta/s1:b', [`FROM ${base}`, 'COPY app /app', `RUN ${INSTALL} && ${CLEAN}`], app('B')),
    });
  if (chosen.includes(2))
    list.push({
      name: '2. base image packages upgraded (bookworm-security)',
      a: () => build('bench-delta/s2:a', [`FROM ${base}`, `RUN ${INSTALL} && ${CLEAN}`, 'COPY app /app'], app('A')),
      b: () => {
        // A new base image release: Debian upgraded, squashed into one layer as the base image is.
        spawnSync('docker', ['rm', '-f', 'bench-delta-upgrade'], { stdio: 'ignore' });
        docker([
          'run',
          '--name',
          'bench-delta-upgrade',
          base,
          'bash',
          '-c',
          `echo '${security}' > /etc/apt/sources.list.d/security.list && apt-get update && apt-get -y upgrade && rm /etc/apt/sources.list.d/security.list && ${CLEAN}`,
        ]);
        execFileSync('sh', [
          '-c',
          `docker export bench-delta-upgrade | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["bash"]' - bench-delta/s2-base:b`,
        ]);
        docker(['rm', '-f', 'bench-delta-upgrade']);
        return build(
          'bench-delta/s2:b',
          ['FROM bench-delta/s2-base:b', `RUN ${INSTALL} && ${CLEAN}`, 'COPY app /app'],
          app('A'),
        );
      },
    });
  if (chosen.includes(3))
    list.push({
      name: '3. one dependency bumped (openssl 3.0.20 → bookworm-security)',
      a: () =>
        build('bench-delta/s3:a', [`FROM ${base}`, `RUN ${INSTALL} openssl && ${CLEAN}`, 'COPY app /app'], app('A')),
      b: () =>
        build(
          'bench-delta/s3:b',
          [
            `FROM ${base}`,
            `RUN echo '${security}' > /etc/apt/sources.list.d/security.list && ${INSTALL} openssl/bookworm-security libssl3/bookworm-security && rm /etc/apt/sources.list.d/security.list && ${CLEAN}`,
            'COPY app /app',
          ],
          app('A'),
        ),
    });
  if (chosen.includes(4)) {
    // The data tree is generated once in A's context, copied and changed for B's (docker build copies it in).
    const data = (tag) => join(work, `ctx-${tag.replace(/\W/g, '_')}`, 'data');
    list.push({
      name: '4. 500 MB image (Debian + generated data tree, a release of changes)',
      // zstd -19 over 500 MB ran past 10 minutes on the shared 2-core machine: BENCH_FLOOR4=1 measures it anyway.
      floor: process.env.BENCH_FLOOR4 === '1',
      a: () => {
        log('generating the data tree');
        writeTree(data('bench-delta/s4:a'), 330e6);
        return build('bench-delta/s4:a', [`FROM ${base}`, 'COPY data /data']);
      },
      b: () => {
        mkdirSync(join(data('bench-delta/s4:b'), '..'), { recursive: true });
        execFileSync('cp', ['-a', data('bench-delta/s4:a'), data('bench-delta/s4:b')]);
        log(`changing it: ${JSON.stringify(changeTree(data('bench-delta/s4:b')))}`);
        return build('bench-delta/s4:b', [`FROM ${base}`, 'COPY data /data']);
      },
    });
  }
  return list;
}

const mib = (bytes) => (bytes / 1024 / 1024).toFixed(2);
const rows = [];
try {
  const base = await testkit.ensureDebianImage();
  const port = await testkit.freePort();
  const dataDir = join(work, 'server');
  const server = await startServer(dataDir, port);
  const host = `127.0.0.1:${port}`;
  await api(server, 'POST', '/fleets', { name: 'bench', slug: 'bench' });
  docker(['login', host, '-u', 'admin', '--password-stdin'], server.apiKey);
  const storage = new RegistryStorage(join(dataDir, 'registry'));
  const store = new DeltaStore(join(dataDir, 'registry'));
  for (const [index, scenario] of (await scenarios(base)).entries()) {
    log(`scenario ${scenario.name}`);
    const a = scenario.a();
    const b = scenario.b();
    const push = (local, tag) => {
      const ref = `${host}/bench/s${index}:${tag}`;
      docker(['tag', local, ref]);
      const digest = /digest: (sha256:[0-9a-f]{64})/.exec(docker(['push', ref]))?.[1];
      docker(['rmi', ref]);
      return { ref: `${host}/bench/s${index}@${digest}`, hex: digest.slice(7) };
    };
    const pushedA = push(a, 'a');
    const pushedB = push(b, 'b');
    const bId = docker(['image', 'inspect', '-f', '{{.Id}}', b]).trim();
    const imageBytes = Number(docker(['image', 'inspect', '-f', '{{.Size}}', b]).trim());

    // The zstd floor, from docker save of both images.
    const saved = join(work, `saved-${index}`);
    mkdirSync(join(saved, 'a'), { recursive: true });
    mkdirSync(join(saved, 'b'));
    const from = savedImage(a, join(saved, 'a'));
    const to = savedImage(b, join(saved, 'b'));
    const have = new Set(from.layers.map((l) => l.diffId));
    const ref = join(saved, 'from.whole');
    const target = join(saved, 'to.whole');
    concat(
      from.layers.map((l) => l.path),
      ref,
    );
    const newBytes = concat(
      to.layers.filter((l) => !have.has(l.diffId)).map((l) => l.path),
      target,
    );
    let floorBytes = Number.NaN;
    let zstd = { seconds: Number.NaN };
    if (scenario.floor !== false && process.env.BENCH_FLOOR !== '0') {
      log('zstd floor');
      zstd = ALGORITHMS.zstd.encode(ref, target, join(saved, 'floor.zst'));
      floorBytes = statSync(join(saved, 'floor.zst')).size;
    }
    rmSync(saved, { recursive: true, force: true });

    log('Flotilla delta (server code)');
    await store.init();
    const startedCompute = process.hrtime.bigint();
    const pair = await computeDelta(storage, store, pushedA.hex, pushedB.hex, { maxLayerBytes: 4 * 1024 ** 3 });
    const computeSeconds = Number(process.hrtime.bigint() - startedCompute) / 1e9;
    if (!pair.ok) throw new Error(`no delta: ${pair.reason}`);
    for (const l of pair.layers)
      log(
        `  layer ${l.diffId.slice(7, 19)}: ${l.size} bytes rebuilt from ${l.length} (${l.method}${l.reorder ? `, reordered source, list ${l.reorder.length} bytes` : ''})`,
      );

    // Device: B absent, A present.
    const removeB = () => spawnSync('docker', ['rmi', '-f', bId], { env, stdio: 'ignore' });
    removeB();
    log('docker pull of B');
    const pull = seconds(() => docker(['pull', pushedB.ref]));
    removeB();
    const tag = `${host}/bench/s${index}:flotilla-delta-${pushedB.hex}`;
    const apply = (cacheDir) => {
      const applyDir = join(work, `apply-${index}`);
      mkdirSync(join(applyDir, 'work'), { recursive: true });
      const inputFile = join(applyDir, 'input.json');
      writeFileSync(
        inputFile,
        JSON.stringify({
          baseRef: a,
          delta: { format: 'xdelta3-layers-v1', path: '/', ...pair },
          deltaFile: store.blobPath(pair.digest.slice(7)),
          workDir: join(applyDir, 'work'),
          tag,
          cacheDir,
        }),
      );
      const child = spawnSync(
        '/usr/bin/time',
        ['-f', 'TIME_PEAK_KIB %M', process.execPath, join(root, 'bench/lib/delta-apply-child.mjs'), inputFile],
        { encoding: 'utf8' },
      );
      if (child.status !== 0) throw new Error(`apply failed: ${child.stderr}`);
      const applied = JSON.parse(child.stdout.trim().split('\n').pop());
      log(
        `  apply phases (s from its start): ${JSON.stringify(applied.phases)}, base layers ${JSON.stringify(applied.base)}`,
      );
      const loadedId = docker(['image', 'inspect', '-f', '{{.Id}}', tag]).trim();
      if (loadedId !== bId) throw new Error(`loaded ${loadedId}, expected ${bId}`);
      removeB();
      rmSync(applyDir, { recursive: true, force: true });
      return { ...applied, largestPeakMiB: Number(/TIME_PEAK_KIB (\d+)/.exec(child.stderr)[1]) / 1024 };
    };
    log('apply (agent code), no layer cache: base layers from docker save');
    const applied = apply(undefined);
    // The cache as the agent's own pull of A leaves it (pull/resumable-pull.js moves each loaded gzip blob in by
    // diffID): A's registry blobs. The apply then reads its base layers there and adds B's rebuilt ones.
    const cacheDir = join(work, `cache-${index}`);
    const cache = new LayerCache(cacheDir, Number.MAX_SAFE_INTEGER);
    const manifestA = JSON.parse(readFileSync(storage.blobPath(pushedA.hex), 'utf8'));
    const diffIdsA = JSON.parse(readFileSync(storage.blobPath(manifestA.config.digest.slice(7)), 'utf8')).rootfs
      .diff_ids;
    for (const [i, layer] of manifestA.layers.entries())
      await cache.store(diffIdsA[i], storage.blobPath(layer.digest.slice(7)), true);
    const cacheBeforeMiB = (await cache.bytes()) / 1024 / 1024;
    log('apply (agent code), layer cache holding A as the agent pulled it');
    const warm = apply(cacheDir);
    const cacheAfterMiB = (await cache.bytes()) / 1024 / 1024;
    rmSync(cacheDir, { recursive: true, force: true });
    rows.push({
      name: scenario.name,
      imageBytes,
      newBytes,
      pullBytes: pair.pullBytes,
      deltaBytes: pair.size,
      floorBytes,
      floorSeconds: zstd.seconds,
      computeSeconds,
      applySeconds: applied.seconds,
      baseReadSeconds: applied.phases['base-read'],
      loadedSeconds: applied.phases.loaded,
      warmSeconds: warm.seconds,
      warmBaseReadSeconds: warm.phases['base-read'],
      warmLoadedSeconds: warm.phases.loaded,
      cacheBeforeMiB,
      cacheAfterMiB,
      pullSeconds: pull.seconds,
      nodePeakMiB: Math.max(applied.nodePeakRssMiB, warm.nodePeakRssMiB),
      largestPeakMiB: Math.max(applied.largestPeakMiB, warm.largestPeakMiB),
    });
  }
  console.log(`# Delta updates (revision ${revision()}; xdelta3 per layer vs pull vs zstd floor)\n`);
  console.log(
    '| scenario | image B MiB | new layers uncompressed MiB | plain pull bytes | Flotilla delta bytes | pull / delta | zstd -19 --long floor bytes | delta / floor | server compute s | docker pull s (loopback) | apply s, base from docker save (read / rebuild + load / check) | apply / pull | apply s, base from layer cache (read / rebuild + load / check) | apply / pull | layer cache MiB before / after | apply node peak RSS MiB | apply largest process peak RSS MiB |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const phases = (total, read, loaded) =>
    `${total.toFixed(2)} (${read.toFixed(2)} / ${(loaded - read).toFixed(2)} / ${(total - loaded).toFixed(2)})`;
  for (const r of rows)
    console.log(
      `| ${r.name} | ${mib(r.imageBytes)} | ${mib(r.newBytes)} | ${r.pullBytes} | ${r.deltaBytes} | ${(r.pullBytes / r.deltaBytes).toFixed(1)}x | ${Number.isNaN(r.floorBytes) ? 'not measured' : r.floorBytes} | ${Number.isNaN(r.floorBytes) ? '–' : `${(r.deltaBytes / r.floorBytes).toFixed(2)}x`} | ${r.computeSeconds.toFixed(2)} | ${r.pullSeconds.toFixed(2)} | ${phases(r.applySeconds, r.baseReadSeconds, r.loadedSeconds)} | ${(r.applySeconds / r.pullSeconds).toFixed(2)}x | ${phases(r.warmSeconds, r.warmBaseReadSeconds, r.warmLoadedSeconds)} | ${(r.warmSeconds / r.pullSeconds).toFixed(2)}x | ${r.cacheBeforeMiB.toFixed(1)} / ${r.cacheAfterMiB.toFixed(1)} | ${r.nodePeakMiB.toFixed(0)} | ${r.largestPeakMiB.toFixed(0)} |`,
    );
  const over = rows.filter((r) => r.largestPeakMiB * 1024 * 1024 >= 256e6);
  console.log(
    over.length === 0
      ? '\nDevice peak RSS under 256 MB in every scenario.'
      : `\nWARNING: device peak RSS at or over 256 MB in: ${over.map((r) => r.name).join('; ')}`,
  );
} finally {
  await stopAll();
  rmSync(work, { recursive: true, force: true });
}
