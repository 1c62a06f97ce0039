import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { PublicUrl, RemoteSession } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { writeCredentials } from '../credentials/credentials.js';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';
import { type FakeRelay, startFakeRelay } from '../test-support/fake-relay.js';

// `device public-url` and `sessions`, the real CLI against the fake relay (fake-relay.ts), which validates the
// request bodies and answers with the protocol's schemas.
const UUID = 'c0ffee00112233445566778899aabbcc';
let relay: FakeRelay;
let dir: { path: string; remove: () => Promise<void> };
let config: string;

before(async () => {
  relay = await startFakeRelay({
    devices: [
      { uuid: UUID, name: 'probe-1', services: {} },
      { uuid: 'abc'.repeat(10).padEnd(32, '0'), name: 'probe-2', services: {} },
    ],
  });
  dir = await tempDir('flotilla-cli-remote-');
  config = join(dir.path, 'config');
  await writeCredentials({ url: relay.url, token: relay.token }, { FLOTILLA_CONFIG_DIR: config });
});
after(async () => {
  await relay.close();
  await dir.remove();
});

test('device public-url: show, enable (default port 80 or --port), disable', { timeout: 30_000 }, async () => {
  let r = await flotilla(config, ['device', 'public-url', 'probe-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^public url:\s+off\nurl:\s+-\ndevice port:\s+-\n$/);

  r = await flotilla(config, ['device', 'public-url', 'enable', 'probe-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `https://${UUID}.devices.flotilla.test → probe-1 port 80\n`);

  const enabled = await flotillaJson<PublicUrl>(config, [
    'device',
    'public-url',
    'enable',
    'probe-1',
    '--port',
    '8080',
  ]);
  assert.deepEqual(enabled, { enabled: true, port: 8080, url: `https://${UUID}.devices.flotilla.test` });
  const shown = await flotillaJson<PublicUrl>(config, ['device', 'public-url', UUID.slice(0, 7)]);
  assert.equal(shown.port, 8080);

  r = await flotilla(config, ['device', 'public-url', 'disable', 'probe-1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'public URL of probe-1 disabled\n');
  assert.equal((await flotillaJson<PublicUrl>(config, ['device', 'public-url', 'probe-1'])).enabled, false);

  r = await flotilla(config, ['device', 'public-url', 'enable', 'probe-1', '--port', '70000']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: invalid --port "70000": give a port from 1 to 65535 (VALIDATION_FAILED)\n');
  r = await flotilla(config, ['device', 'public-url', 'enable', 'nope']);
  assert.equal(r.stderr, 'error: no device "nope" (DEVICE_NOT_FOUND)\n');
});

test('sessions: the audit log as a table or JSON, by device, limited', { timeout: 30_000 }, async () => {
  assert.equal((await flotilla(config, ['sessions'])).stdout, 'nothing to show\n');
  for (const device of ['probe-1', 'probe-2', 'probe-1']) {
    const r = await flotilla(config, ['ssh', device, '--', 'echo', device], { timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
  }
  const all = await flotillaJson<RemoteSession[]>(config, ['sessions']);
  assert.equal(all.length, 3);
  assert.deepEqual(
    all.map((s) => [s.kind, s.device.name, s.bytesOut]),
    [
      ['shell', 'probe-1', 8],
      ['shell', 'probe-2', 8],
      ['shell', 'probe-1', 8],
    ],
  );
  const one = await flotillaJson<RemoteSession[]>(config, ['sessions', '--device', 'probe-2', '--limit', '1']);
  assert.deepEqual(
    one.map((s) => s.device.name),
    ['probe-2'],
  );
  const table = (await flotilla(config, ['sessions', '--limit', '2'])).stdout.split('\n');
  assert.match(table[0]!, /^KIND\s+DEVICE\s+USER\s+TARGET\s+FROM\s+STARTED\s+DURATION\s+IN\s+OUT\s+END$/);
  assert.match(
    table[1]!,
    /^shell\s+probe-1\s+admin\s+host\s+127\.0\.0\.1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d+s\s+0 B\s+8 B\s+closed$/,
  );
  assert.equal(table.filter(Boolean).length, 3);
  const r = await flotilla(config, ['sessions', '--limit', '0']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: invalid --limit "0": .+ \(VALIDATION_FAILED\)\n$/);
});
