#!/usr/bin/env node
// Host OS update by delta against the full image (issue 17, "reuse deltas where they exist"), on loopback: a real
// server (in process, SQLite) holds two OS releases of BENCH_IMAGE_MIB (default 256) ext4 images built with
// `mkfs.ext4 -d` from one tree (testkit osImagePair: BENCH_FILES files of BENCH_FILE_KIB KiB of incompressible data;
// 2.0.0 changes os-release, rewrites 3 files and adds 1); the agent's HostOsUpdater (packages/agent/dist/hostos)
// on two loop devices, booted on slot a holding 1.0.0, with the GRUB adapter, updates to 2.0.0 from the command to
// committed (write, read-back, arm, "reboot", trial, commit), once by delta (OsDelta) and once with the full image
// only, for BENCH_RUNS (default 2) runs each. It prints: the image and delta sizes, the server's compute time (first
// ask → ready, polled every 50 ms, a fresh pair each run: the server's data folder is new each run), and the
// device's times, with the bytes the server sent (through a counting TCP proxy: headers and asks included).
// Run as root after `npx tsc -b`: `flock /tmp/bench.lock node bench/os-delta.mjs`. Report (markdown) on stdout.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const dist = (p) => import(join(root, 'packages', p));
const { startServer } = await dist('server/dist/index.js');
const protocol = await dist('protocol/dist/index.js');
const { osImagePair } = await dist('testkit/dist/index.js');
const { HostOsUpdater } = await dist('agent/dist/hostos/host-os-updater.js');
const { controlPlaneImage } = await dist('agent/dist/hostos/image-download.js');
const { OsDelta } = await dist('agent/dist/hostos/os-delta.js');
const { GrubBootloader, GrubBootSimulator } = await dist('agent/dist/hostos/grub-bootloader.js');

const MIB = 1 << 20;
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 256);
const FILES = Number(process.env.BENCH_FILES ?? 160);
const FILE_KIB = Number(process.env.BENCH_FILE_KIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const log = (m) => process.stderr.write(`${m}\n`);
const sh = (file, args) => execFileSync(file, args, { encoding: 'utf8' });
const hex = (bytes) => createHash('sha256').update(bytes).digest('hex');
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A TCP proxy to `port` that counts the bytes the server sent. */
async function countingProxy(port) {
  let fromServer = 0;
  const p = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    client.pipe(upstream);
    upstream.on('data', (chunk) => {
      fromServer += chunk.length;
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise((resolve) => p.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${p.address().port}`,
    sent: () => fromServer,
    reset: () => (fromServer = 0),
    close: () => p.close(),
  };
}

const work = mkdtempSync(join(tmpdir(), 'flotilla-bench-osdelta-'));
const loops = [];
try {
  log(`building two ${IMAGE_MIB} MiB ext4 images (${FILES} files of ${FILE_KIB} KiB)`);
  const pair = await osImagePair(work, { mib: IMAGE_MIB, files: FILES, fileBytes: FILE_KIB * 1024 });
  const size = pair.v2.bytes.length;
  const slots = {};
  for (const slot of ['a', 'b']) {
    const file = join(work, `slot-${slot}.img`);
    sh('truncate', ['-s', `${IMAGE_MIB + 32}M`, file]);
    slots[slot] = sh('losetup', ['-f', '--show', file]).trim();
    loops.push(slots[slot]);
  }
  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const byDelta of [true, false]) {
      const dir = join(work, `run-${run}-${byDelta ? 'delta' : 'full'}`);
      mkdirSync(dir);
      const server = await startServer({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0 });
      const proxy = await countingProxy(Number(new URL(server.url).port));
      try {
        const key = server.admin.apiKey;
        const api = async (method, path, body, bearer = key) => {
          const res = await fetch(`${server.url}${path}`, {
            method,
            headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
            ...(body ? { body: JSON.stringify(body) } : {}),
          });
          const text = await res.text();
          if (!res.ok && res.status !== 202) throw new Error(`${method} ${path}: ${res.status} ${text}`);
          return { status: res.status, data: text ? JSON.parse(text) : undefined };
        };
        const fleet = (await api('POST', '/api/v1/fleets', { name: 'bench', slug: 'bench' })).data;
        const pk = (await api('POST', '/api/v1/fleets/bench/provisioning-keys', {})).data;
        const uuid = protocol.generateDeviceUuid();
        const deviceKey = protocol.generateKey();
        const device = { application: fleet.id, uuid, device_type: 'generic-amd64', api_key: deviceKey };
        await api('POST', '/device/register', device, pk.key);
        const org = (await api('GET', '/api/v1/organizations')).data.items[0];
        const repository = protocol.osRepository(org.id, 'generic-amd64');
        const basic = `Basic ${Buffer.from(`admin:${key}`).toString('base64')}`;
        for (const [version, slot] of [
          ['1.0.0', pair.v1.bytes],
          ['2.0.0', pair.v2.bytes],
        ]) {
          const config = Buffer.from(JSON.stringify({ deviceType: 'generic-amd64', version }));
          for (const blob of [slot, config]) {
            const res = await fetch(`${server.url}/v2/${repository}/blobs/uploads/?digest=sha256:${hex(blob)}`, {
              method: 'POST',
              headers: { authorization: basic, 'content-type': 'application/octet-stream' },
              body: blob,
            });
            if (res.status !== 201) throw new Error(`blob: ${res.status} ${await res.text()}`);
          }
          const manifest = Buffer.from(
            JSON.stringify({
              schemaVersion: 2,
              mediaType: 'application/vnd.oci.image.manifest.v1+json',
              config: {
                mediaType: protocol.OS_RELEASE_CONFIG_MEDIA_TYPE,
                digest: `sha256:${hex(config)}`,
                size: config.length,
              },
              layers: [
                { mediaType: protocol.OS_SLOT_IMAGE_MEDIA_TYPE, digest: `sha256:${hex(slot)}`, size: slot.length },
              ],
            }),
          );
          const put = await fetch(`${server.url}/v2/${repository}/manifests/sha256:${hex(manifest)}`, {
            method: 'PUT',
            headers: { authorization: basic, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
            body: manifest,
          });
          if (put.status !== 201) throw new Error(`manifest: ${put.status}`);
          await api('POST', `/api/v1/organizations/${org.handle}/os-releases`, {
            deviceType: 'generic-amd64',
            version,
            manifestDigest: `sha256:${hex(manifest)}`,
          });
        }
        const target = { version: '2.0.0', url: '', sha256: hex(pair.v2.bytes), size };
        target.url = `${proxy.url}${protocol.path(protocol.DEVICE_ROUTES.osImage.path, { uuid, hash: target.sha256 })}`;
        let computeSeconds;
        let deltaSize;
        if (byDelta) {
          // The server's compute time: the first ask starts it; polled until ready (the device waits the same way).
          const ask = { fromVersion: '1.0.0', toSha256: target.sha256 };
          const t0 = performance.now();
          for (;;) {
            const answer = await api('POST', `/device/v1/${uuid}/os-deltas`, ask, deviceKey);
            if (answer.status === 200) {
              deltaSize = answer.data.delta.size;
              break;
            }
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          computeSeconds = (performance.now() - t0) / 1000;
        }
        log(`run ${run}/${RUNS} ${byDelta ? 'by delta' : 'full image'}: update`);
        sh('dd', [`if=${pair.v1.path}`, `of=${slots.a}`, 'bs=1M', 'conv=fsync', 'status=none']);
        sh('dd', ['if=/dev/zero', `of=${slots.b}`, 'bs=1M', `count=${IMAGE_MIB}`, 'conv=fsync', 'status=none']);
        const grubenv = join(dir, 'grubenv');
        sh('grub-editenv', [grubenv, 'create']);
        const bootloader = new GrubBootloader(grubenv);
        const config = {
          slots,
          bootloader: { type: 'grub', grubenv },
          trialHealthTimeoutSeconds: 60,
          cmdlineKey: 'flotilla.slot',
        };
        const dataDir = join(dir, 'agent');
        mkdirSync(dataDir, { mode: 0o700 });
        const endpoint = { apiEndpoint: proxy.url, uuid, deviceApiKey: deviceKey };
        const quiet = pino({ level: 'silent' });
        const marks = {};
        const agent = (booted) =>
          HostOsUpdater.open({
            config,
            bootloader,
            booted,
            stateFile: join(dataDir, 'host-os-update.json'),
            checkpointFile: join(dataDir, 'host-os-write.json'),
            openImage: controlPlaneImage(endpoint),
            osDelta: byDelta ? new OsDelta({ endpoint, dataDir, log: quiet }) : undefined,
            runningVersion: '1.0.0',
            healthChecks: [{ name: 'ready', check: async () => true }],
            reboot: async () => undefined,
            log: quiet,
            onChange: (state) => (marks[state.phase] ??= performance.now()),
          });
        proxy.reset();
        const t0 = performance.now();
        const armed = await (await agent('a')).start(target);
        if (armed.phase !== 'armed') throw new Error(`update ended ${armed.phase}: ${armed.reason?.message}`);
        const booted = await new GrubBootSimulator(bootloader).boot();
        const done = await (await agent(booted)).resume();
        const total = (performance.now() - t0) / 1000;
        if (done.phase !== 'committed') throw new Error(`trial ended ${done.phase}: ${done.reason?.message}`);
        const onSlot = hex(execFileSync('head', ['-c', String(size), slots.b], { maxBuffer: size + MIB }));
        if (onSlot !== target.sha256) throw new Error('slot b does not hold 2.0.0');
        rows.push({
          run,
          byDelta,
          computeSeconds,
          deltaSize,
          writeSeconds: (marks.verifying - t0) / 1000,
          total,
          sent: proxy.sent(),
        });
      } finally {
        proxy.close();
        await server.close();
      }
    }
  }
  const fmt = (n) => n.toLocaleString('en-US');
  const d = rows.filter((r) => r.byDelta);
  const f = rows.filter((r) => !r.byDelta);
  process.stdout.write(
    [
      `# Host OS update by delta vs full image (${revision()}, load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')} at the end)`,
      '',
      `Images: ${IMAGE_MIB} MiB ext4 (${fmt(size)} bytes), ${FILES} files of ${FILE_KIB} KiB of incompressible data; 2.0.0 rewrites 3 of them, adds 1 and changes /etc/os-release. Loopback HTTP, loop devices on ${tmpdir()}, GRUB adapter.`,
      '',
      '| run | how | delta bytes | server compute s | write s (command → written) | command → committed s | bytes sent by the server | / image |',
      '|---|---|---|---|---|---|---|---|',
      ...rows.map(
        (r) =>
          `| ${r.run} | ${r.byDelta ? 'delta' : 'full image'} | ${r.byDelta ? fmt(r.deltaSize) : '–'} | ${r.byDelta ? r.computeSeconds.toFixed(2) : '–'} | ${r.writeSeconds.toFixed(2)} | ${r.total.toFixed(2)} | ${fmt(r.sent)} | ${(r.sent / size).toFixed(4)} |`,
      ),
      '',
      `Medians: by delta ${median(d.map((r) => r.total)).toFixed(2)} s command → committed (compute ${median(d.map((r) => r.computeSeconds)).toFixed(2)} s before it), full image ${median(f.map((r) => r.total)).toFixed(2)} s; bytes ${fmt(median(d.map((r) => r.sent)))} vs ${fmt(median(f.map((r) => r.sent)))}.`,
      '',
    ].join('\n'),
  );
} finally {
  for (const loop of loops) {
    try {
      sh('losetup', ['-d', loop]);
    } catch (error) {
      log(`cannot detach ${loop}: ${error.message}`);
    }
  }
  rmSync(work, { recursive: true, force: true });
}
