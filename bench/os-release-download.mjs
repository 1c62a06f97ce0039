#!/usr/bin/env node
// The host OS image as a device downloads it from the control plane (issue 17): a real server (SQLite, loopback),
// an OS release of BENCH_IMAGE_MIB (default 256) random bytes pushed to its registry and recorded, a device told to
// run it; the agent's reader (packages/agent/dist/hostos/image-download.js: device key, Range resume) streams the
// slot image from the OS image route and hashes it, as the slot writer does (no disk write, so the figure is the
// route and the reader alone). Each of BENCH_RUNS (default 3) runs measures:
//   - the limit: the same bytes from the registry's own blob route (the server's plain blob path), read by fetch;
//   - the OS image route read by the agent's reader;
//   - the same through a TCP proxy that cuts the first connection after 40 % of the image: the time to the whole
//     image and the bytes the server sent (a resume re-sends nothing but what was in flight).
// Run after `npx tsc -b`: `node bench/os-release-download.mjs`. Progress on stderr, the report (markdown) on stdout.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { revision } from './lib/revision.mjs';

const root = new URL('..', import.meta.url).pathname;
const { startServer } = await import(join(root, 'packages/server/dist/index.js'));
const protocol = await import(join(root, 'packages/protocol/dist/index.js'));
const { controlPlaneImage } = await import(join(root, 'packages/agent/dist/hostos/image-download.js'));

const MIB = 1 << 20;
const IMAGE_MIB = Number(process.env.BENCH_IMAGE_MIB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const log = (m) => process.stderr.write(`${m}\n`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const digest = (bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

const work = mkdtempSync(join(tmpdir(), 'flotilla-bench-osrel-'));
let server;
try {
  server = await startServer({ dataDir: join(work, 'server'), host: '127.0.0.1', port: 0 });
  const key = server.admin.apiKey;
  const api = async (method, path, body, bearer = key) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : undefined;
  };
  const fleet = await api('POST', '/api/v1/fleets', { name: 'bench', slug: 'bench' });
  const pk = await api('POST', '/api/v1/fleets/bench/provisioning-keys', {});
  const uuid = protocol.generateDeviceUuid();
  const deviceKey = protocol.generateKey();
  await api(
    'POST',
    '/device/register',
    { application: fleet.id, uuid, device_type: 'generic-amd64', api_key: deviceKey },
    pk.key,
  );
  const org = (await api('GET', '/api/v1/organizations')).items[0];
  const repository = protocol.osRepository(org.id, 'generic-amd64');

  log(`pushing a ${IMAGE_MIB} MiB image`);
  const slot = randomBytes(IMAGE_MIB * MIB);
  const config = Buffer.from(JSON.stringify({ deviceType: 'generic-amd64', version: '1.0.0' }));
  const basic = `Basic ${Buffer.from(`admin:${key}`).toString('base64')}`;
  for (const blob of [slot, config]) {
    const res = await fetch(`${server.url}/v2/${repository}/blobs/uploads/?digest=${digest(blob)}`, {
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
      config: { mediaType: protocol.OS_RELEASE_CONFIG_MEDIA_TYPE, digest: digest(config), size: config.length },
      layers: [{ mediaType: protocol.OS_SLOT_IMAGE_MEDIA_TYPE, digest: digest(slot), size: slot.length }],
    }),
  );
  const put = await fetch(`${server.url}/v2/${repository}/manifests/${digest(manifest)}`, {
    method: 'PUT',
    headers: { authorization: basic, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201) throw new Error(`manifest: ${put.status}`);
  await api('POST', `/api/v1/organizations/${org.handle}/os-releases`, {
    deviceType: 'generic-amd64',
    version: '1.0.0',
    manifestDigest: digest(manifest),
  });
  await api('PUT', `/api/v1/devices/${uuid}/os`, { version: '1.0.0' });
  const os = (await api('GET', `/device/v3/${uuid}/state`, undefined, deviceKey))[uuid].os;
  const expected = digest(slot).slice(7);
  if (os.sha256 !== expected) throw new Error('the target names another image');

  // A proxy that cuts its first connection after `cutAt` bytes from the server; counts what the server sent.
  const proxy = async (cutAt) => {
    let connections = 0;
    let fromServer = 0;
    const port = new URL(server.url).port;
    const p = createServer((client) => {
      const index = connections++;
      let passed = 0;
      const upstream = connect(Number(port), '127.0.0.1');
      client.pipe(upstream);
      upstream.on('data', (chunk) => {
        fromServer += chunk.length;
        passed += chunk.length;
        if (index === 0 && passed >= cutAt) {
          client.destroy();
          upstream.destroy();
          return;
        }
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
      stats: () => ({ connections, fromServer }),
      close: () => p.close(),
    };
  };
  const readAndHash = async (stream) => {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of stream) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    if (bytes !== slot.length || hash.digest('hex') !== expected) throw new Error(`got ${bytes} bytes, not the image`);
  };

  const rows = [];
  for (let run = 1; run <= RUNS; run++) {
    log(`run ${run}/${RUNS}`);
    let t0 = performance.now();
    const blob = await fetch(`${server.url}/v2/${repository}/blobs/sha256:${expected}`, {
      headers: { authorization: basic },
    });
    await readAndHash(blob.body);
    const blobSeconds = (performance.now() - t0) / 1000;

    t0 = performance.now();
    const direct = controlPlaneImage({ apiEndpoint: server.url, deviceApiKey: deviceKey });
    await readAndHash(await direct(new URL(os.url, server.url).href, AbortSignal.timeout(600_000)));
    const routeSeconds = (performance.now() - t0) / 1000;

    const cut = await proxy(Math.floor(slot.length * 0.4));
    t0 = performance.now();
    const viaProxy = controlPlaneImage({ apiEndpoint: cut.url, deviceApiKey: deviceKey, retryDelayMs: 100 });
    await readAndHash(await viaProxy(new URL(os.url, cut.url).href, AbortSignal.timeout(600_000)));
    const cutSeconds = (performance.now() - t0) / 1000;
    const stats = cut.stats();
    cut.close();
    rows.push({ blobSeconds, routeSeconds, cutSeconds, connections: stats.connections, sent: stats.fromServer });
  }
  const mibps = (s) => IMAGE_MIB / s;
  const medianRow = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(rows.map((r) => r[k]))]));
  process.stdout.write(
    [
      `# Host OS image download from the control plane (${revision()})`,
      '',
      `${IMAGE_MIB} MiB slot image (random bytes), real server on loopback (SQLite), read and hashed in memory; the median row is each column's median over ${RUNS} runs. The cut run's proxy drops its first connection after 40 % of the image and waits 100 ms before the resume.`,
      '',
      '| run | registry blob route, fetch (MiB/s) | OS image route, agent reader (MiB/s) | / blob route | cut at 40 %: image in (s) | connections | bytes from server / image |',
      '|---|---|---|---|---|---|---|',
      ...[...rows, medianRow].map(
        (r, i) =>
          `| ${i < rows.length ? i + 1 : 'median'} | ${mibps(r.blobSeconds).toFixed(0)} | ${mibps(r.routeSeconds).toFixed(0)} | ${(r.blobSeconds / r.routeSeconds).toFixed(2)} | ${r.cutSeconds.toFixed(2)} | ${r.connections} | ${(r.sent / slot.length).toFixed(3)} |`,
      ),
      '',
    ].join('\n'),
  );
} finally {
  await server?.close();
  rmSync(work, { recursive: true, force: true });
}
