import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { ensureBusyboxImage } from '@flotilla/testkit';
import { ControlPlane } from './control-plane.js';

type Transcript = Array<[step: string, status: number, detail?: string]>;

/**
 * The device's side of the protocol, step by step, against `base`: what each answer was. Ids, keys and ETags
 * differ between two devices, so the transcript keeps only what must be the same: statuses and shapes.
 */
async function deviceScenario(cp: ControlPlane, base: string, provisioningKey: string, image: string) {
  const t: Transcript = [];
  const uuid = generateDeviceUuid();
  const firstKey = generateKey();
  const deviceKey = generateKey();
  const send = (method: string, path: string, key: string, body?: unknown, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? null : JSON.stringify(body),
    });
  const register = { uuid, api_key: firstKey, application: cp.fleet.id, device_type: 'generic-amd64' };
  t.push(['register', (await send('POST', '/device/register', provisioningKey, register)).status]);
  t.push(['register again', (await send('POST', '/device/register', provisioningKey, register)).status]);
  const found = await send('GET', `/v7/device?$select=id&$filter=uuid eq '${uuid}'`, provisioningKey);
  const id = ((await found.json()) as { d: Array<{ id: number }> }).d[0]?.id;
  t.push(['find self', found.status, typeof id]);
  const exchange = await send('POST', `/api-key/device/${id}/device-key`, provisioningKey, { apiKey: deviceKey });
  t.push(['key exchange', exchange.status]);
  t.push(['old key refused', (await send('GET', `/device/v3/${uuid}/state`, firstKey)).status]);
  const target = await send('GET', `/device/v3/${uuid}/state`, deviceKey);
  const etag = target.headers.get('etag') ?? '';
  const body = (await target.json()) as Record<string, { apps: Record<string, unknown> }>;
  t.push(['target state', target.status, `${etag !== ''} ${Object.keys(body[uuid]?.apps ?? {}).join(',')}`]);
  const unchanged = await send('GET', `/device/v3/${uuid}/state`, deviceKey, undefined, { 'if-none-match': etag });
  t.push(['target unchanged', unchanged.status, unchanged.headers.get('etag') === etag ? 'same etag' : 'other']);
  const report = { [uuid]: { status: 'Idle', supervisor_version: '0.1.0', api_port: null } };
  t.push(['state report', (await send('PATCH', '/device/v3/state', deviceKey, report)).status]);
  t.push([
    'report for another',
    (await send('PATCH', '/device/v3/state', deviceKey, { [generateDeviceUuid()]: {} })).status,
  ]);
  const line = { message: 'hello', timestamp: Date.now(), isSystem: true, isStdErr: false };
  const logs = await fetch(`${base}/device/v2/${uuid}/log-stream`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${deviceKey}`,
      'content-type': 'application/x-ndjson',
      'content-encoding': 'gzip',
    },
    body: gzipSync(`${JSON.stringify(line)}\n`),
  });
  t.push(['log stream', logs.status]);
  // A registry pull as the engine does it: challenge, token with the device's credentials, manifest, a blob.
  const [repoPath, digest] = image.slice(image.indexOf('/') + 1).split('@') as [string, string];
  const challenge = await fetch(`${base}/v2/${repoPath}/manifests/${digest}`);
  const header = challenge.headers.get('www-authenticate') ?? '';
  t.push(['pull unauthenticated', challenge.status, header.split(' ')[0]]);
  const realm = new URL(/realm="([^"]+)"/.exec(header)?.[1] ?? '');
  const service = /service="([^"]+)"/.exec(header)?.[1] ?? '';
  const basic = Buffer.from(`d_${uuid}:${deviceKey}`).toString('base64');
  const tokenAnswer = await fetch(
    `${base}${realm.pathname}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(`repository:${repoPath}:pull`)}`,
    { headers: { authorization: `Basic ${basic}` } },
  );
  const { token } = (await tokenAnswer.json()) as { token: string };
  t.push(['registry token', tokenAnswer.status]);
  const accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json';
  const manifest = await fetch(`${base}/v2/${repoPath}/manifests/${digest}`, {
    headers: { authorization: `Bearer ${token}`, accept },
  });
  const manifestBytes = Buffer.from(await manifest.arrayBuffer());
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  t.push([
    'manifest',
    manifest.status,
    `${manifest.headers.get('docker-content-digest') === digest} ${sha(manifestBytes) === digest}`,
  ]);
  const config = (JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string } }).config.digest;
  const blob = await fetch(`${base}/v2/${repoPath}/blobs/${config}`, { headers: { authorization: `Bearer ${token}` } });
  t.push(['blob', blob.status, String(sha(Buffer.from(await blob.arrayBuffer())) === config)]);
  return { transcript: t, uuid, deviceKey, repoPath, token, config };
}

/**
 * The tap (tap.ts) must change nothing it is not told to: the same device scenario run directly against the real
 * server and through the tap gives the same answers, and the tap's record matches what was sent. Then each fault
 * does what it says, and only while it is in force.
 */
describe('the tap in front of the real control plane', () => {
  let cp: ControlPlane;
  let provisioningKey: string;
  let image: string;

  before(async () => {
    cp = await ControlPlane.start();
    provisioningKey = (await cp.api('POST', `/api/v1/fleets/${cp.fleet.slug}/provisioning-keys`, {})).key;
    image = await cp.push(await ensureBusyboxImage(), 'contract');
  });

  after(async () => {
    await cp?.close();
  });

  it('answers the device routes and a registry pull exactly as the server does', async () => {
    const direct = await deviceScenario(cp, cp.server.url, provisioningKey, image);
    const tapped = await deviceScenario(cp, cp.url, provisioningKey, image);
    assert.deepEqual(tapped.transcript, direct.transcript);
    assert.deepEqual(direct.transcript, [
      ['register', 201],
      ['register again', 409],
      ['find self', 200, 'number'],
      ['key exchange', 200],
      ['old key refused', 401],
      ['target state', 200, `true ${cp.fleet.uuid}`],
      ['target unchanged', 304, 'same etag'],
      ['state report', 200],
      ['report for another', 401],
      ['log stream', 201],
      ['pull unauthenticated', 401, 'Bearer'],
      ['registry token', 200],
      ['manifest', 200, 'true true'],
      ['blob', 200, 'true'],
    ]);
    // Recorded: only what the server accepted, and nothing of the direct run.
    assert.deepEqual(
      cp.tap.reports.map((r) => Object.keys(r.body)),
      [[tapped.uuid]],
    );
    assert.equal(cp.tap.state.get(tapped.uuid)?.status, 'Idle');
    assert.equal(cp.tap.targetEtags.length, 1, 'one 200 target answer (the 304 is not one)');
    assert.equal(cp.tap.pullsStarted, 1);
  });

  it('faults: held blobs, a served target, unreachable; each only while in force', async () => {
    const { uuid, deviceKey, repoPath, token, config } = await deviceScenario(cp, cp.url, provisioningKey, image);
    const release = cp.tap.holdBlobs();
    let settled = false;
    const blob = fetch(`${cp.url}/v2/${repoPath}/blobs/${config}`, { headers: { authorization: `Bearer ${token}` } });
    void blob.then(() => (settled = true));
    // Another request through the tap completes while the blob is held.
    const other = await fetch(`${cp.url}/device/v3/${uuid}/state`, {
      headers: { authorization: `Bearer ${deviceKey}` },
    });
    assert.equal(other.status, 200);
    assert.equal(settled, false, 'the blob download is held');
    release();
    assert.equal((await blob).status, 200);

    cp.tap.serveTarget(uuid, { [uuid]: { not: 'a target' } });
    const served = await fetch(`${cp.url}/device/v3/${uuid}/state`, {
      headers: { authorization: `Bearer ${deviceKey}` },
    });
    assert.deepEqual(await served.json(), { [uuid]: { not: 'a target' } });
    cp.tap.serveTarget(uuid, undefined);
    const real = await fetch(`${cp.url}/device/v3/${uuid}/state`, {
      headers: { authorization: `Bearer ${deviceKey}` },
    });
    assert.ok(((await real.json()) as Record<string, { apps: unknown }>)[uuid]?.apps);

    await cp.tap.down();
    await assert.rejects(fetch(`${cp.url}/device/v3/${uuid}/state`));
    await cp.tap.up();
    assert.equal((await fetch(`${cp.url}/healthz`)).status, 200);
  });
});
