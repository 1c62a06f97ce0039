import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { configJsonSchema, decodeRootCa, generateDeviceUuid, generateKey, osConfigSchema } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { startServer, type RunningServer } from '../server.js';
import { httpCall } from '../testing/tenants.js';
import { TLS_FILES } from './self-signed.js';

interface Answer {
  status: number;
  body: string;
}

/** One HTTPS request that trusts only `ca` (not the system's roots). */
function httpsCall(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ca?: string[] },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: init.method ?? 'GET', headers: init.headers, ca: init.ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(init.body);
  });
}

let dir: { path: string; remove: () => Promise<void> };
let server: RunningServer | undefined;

before(async () => {
  dir = await tempDir('flotilla-tls-');
});
after(async () => {
  await server?.close();
  await dir.remove();
});

const start = (publicUrl?: string) =>
  startServer({
    dataDir: join(dir.path, 'data'),
    host: '127.0.0.1',
    port: 0,
    tls: 'self-signed',
    plainHttp: { host: '127.0.0.1', port: 0 },
    ...(publicUrl ? { publicUrl } : {}),
  });

test('a device trusting only the CA from config.json registers, polls, logs and gets a registry token', async () => {
  server = await start();
  assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const plain = server.plainUrl ?? '';
  assert.match(plain, /^http:\/\/127\.0\.0\.1:\d+$/, 'the plain-HTTP listener is up');
  const key = server.admin?.apiKey ?? '';
  // The user API over plain HTTP on loopback (a TLS-terminating proxy's path).
  const fleet = await httpCall(plain, 'POST', '/api/v1/fleets', { key, body: { name: 'Tls', slug: 'tls' } });
  assert.equal(fleet.status, 201, fleet.text);
  const made = await httpCall(plain, 'POST', '/api/v1/fleets/tls/config-json', { key, body: {} });
  assert.equal(made.status, 200, made.text);
  const config = configJsonSchema.parse(made.data);
  assert.equal(config.apiEndpoint, server.url);
  assert.ok(config.balenaRootCA, 'config.json carries the CA');
  const ca = decodeRootCa(config.balenaRootCA);
  assert.equal(ca?.length, 1);
  assert.equal(ca?.[0]?.trim(), server.rootCa?.trim());

  // Without the CA the certificate is refused: the trust below comes from config.json alone.
  await assert.rejects(httpsCall(`${server.url}/ping`, {}), /self[- ]signed|unable to verify|issuer/i);

  const base = config.apiEndpoint ?? '';
  const uuid = generateDeviceUuid();
  const deviceKey = generateKey();
  const json = { 'content-type': 'application/json' };
  const registered = await httpsCall(`${base}/device/register`, {
    method: 'POST',
    ca,
    headers: { ...json, authorization: `Bearer ${config.provisioningApiKey}` },
    body: JSON.stringify({ application: config.applicationId, uuid, device_type: 'generic-amd64', api_key: deviceKey }),
  });
  assert.equal(registered.status, 201, registered.body);
  const bearer = { authorization: `Bearer ${deviceKey}` };
  const target = await httpsCall(`${base}/device/v3/${uuid}/state`, { ca, headers: bearer });
  assert.equal(target.status, 200, target.body);
  assert.ok(JSON.parse(target.body)[uuid], 'the target state names the device');

  const lines = `${JSON.stringify({ message: 'over TLS', timestamp: Date.now() })}\n`;
  const logged = await httpsCall(`${base}/device/v2/${uuid}/log-stream`, {
    method: 'POST',
    ca,
    headers: { ...bearer, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' },
    body: gzipSync(lines),
  });
  assert.equal(logged.status, 201, logged.body);
  const stored = await httpCall(plain, 'GET', `/api/v1/devices/${uuid}/logs`, { key });
  assert.deepEqual(
    stored.data.items.map((l: { message: string }) => l.message),
    ['over TLS'],
  );

  const host = new URL(base).host;
  const basic = `Basic ${Buffer.from(`d_${uuid}:${deviceKey}`).toString('base64')}`;
  const token = await httpsCall(
    `${base}/auth/v1/token?service=${host}&scope=${encodeURIComponent('repository:tls/main:pull')}`,
    { ca, headers: { authorization: basic } },
  );
  assert.equal(token.status, 200, token.body);
  assert.ok(JSON.parse(token.body).token, 'a registry token');

  // balenaOS's os-config asks this at boot, with the same CA and no credentials.
  const os = await httpsCall(`${base}/os/v1/config`, { ca });
  assert.equal(os.status, 200, os.body);
  assert.deepEqual(osConfigSchema.parse(JSON.parse(os.body)).services.ssh, { authorized_keys: '' });
});

test('the CA and its keys are private files, and a restart serves the same CA', async () => {
  assert.ok(server, 'the first test started the server');
  const tlsDir = join(dir.path, 'data', 'tls');
  assert.equal(statSync(tlsDir).mode & 0o777, 0o700);
  for (const name of Object.values(TLS_FILES)) assert.equal(statSync(join(tlsDir, name)).mode & 0o777, 0o600, name);
  const firstCa = server.rootCa;
  await server.close();
  server = await start();
  assert.equal(server.rootCa, firstCa, 'the same CA after a restart');
  const pong = await httpsCall(`${server.url}/ping`, { ca: [firstCa ?? ''] });
  assert.deepEqual(pong, { status: 200, body: 'OK' });

  // A new public host gets a new server certificate from the same CA: flashed devices keep trusting the server.
  await server.close();
  server = await start('https://flotilla.example.test:8443');
  assert.equal(server.rootCa, firstCa);
  const cert = await new Promise<string>((resolve, reject) => {
    const req = request(`${server?.url}/ping`, { ca: [firstCa ?? ''], servername: 'flotilla.example.test' }, (res) => {
      const peer = res.socket as unknown as { getPeerX509Certificate(): { subjectAltName?: string } };
      resolve(peer.getPeerX509Certificate().subjectAltName ?? '');
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
  assert.match(cert, /DNS:flotilla\.example\.test/);
  assert.match(cert, /IP Address:127\.0\.0\.1/);
});
