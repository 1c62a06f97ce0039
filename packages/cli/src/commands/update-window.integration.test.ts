import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Device, Fleet } from '@flotilla/protocol';
import { startServer, type RunningServer } from '@flotilla/server';
import { SimulatedDevice, apiCall } from '@flotilla/server/testing';
import { tempDir } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

/** `flotilla fleet window …` and `flotilla device window …` against a real server, shown by `fleet info` / `device info`. */

let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
let config: string;
let device: SimulatedDevice;
const slug = `window-cli-${process.pid}`;

before(async () => {
  dir = await tempDir('flotilla-cli-window-');
  config = join(dir.path, 'config');
  server = await startServer({ dataDir: join(dir.path, 'data'), host: '127.0.0.1', port: 0 });
  const key = server.admin!.apiKey;
  assert.equal((await flotilla(config, ['login', '--url', server.url, '--api-key', key])).code, 0);
  await flotillaJson(config, ['fleet', 'create', 'Window CLI', '--slug', slug]);
  const fleet = await apiCall(server.url, 'GET', `/api/v1/fleets/${slug}`, key);
  const pk = await apiCall(server.url, 'POST', `/api/v1/fleets/${slug}/provisioning-keys`, key, {});
  device = await SimulatedDevice.register(server.url, fleet.data.id, pk.data.key);
});

after(async () => {
  await server?.close();
  await dir?.remove();
});

test('fleet and device windows: set, shown by info, cleared; bad input refused with its code', async () => {
  let r = await flotilla(config, [
    'fleet',
    'window',
    'set',
    slug,
    '--cron',
    '0 2 * * *',
    '--duration',
    '2h',
    '--tz',
    'Europe/Paris',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${slug}: update window 0 2 * * * Europe/Paris, 2h\n`);
  r = await flotilla(config, ['fleet', 'info', slug]);
  assert.match(r.stdout, /update window: +0 2 \* \* \* Europe\/Paris, 2h\n/);
  r = await flotilla(config, ['device', 'info', device.uuid]);
  assert.match(r.stdout, /update window: +0 2 \* \* \* Europe\/Paris, 2h \(the fleet's\)\n/);

  const own = await flotillaJson<Device>(config, [
    'device',
    'window',
    'set',
    device.uuid.slice(0, 7),
    '--cron',
    '30 1 * * 6,0',
    '--duration',
    '90m',
  ]);
  assert.deepEqual(own.updateWindow, {
    cron: '30 1 * * 6,0',
    durationSeconds: 5400,
    timezone: 'UTC',
    source: 'device',
  });
  r = await flotilla(config, ['device', 'info', device.uuid]);
  assert.match(r.stdout, /update window: +30 1 \* \* 6,0 UTC, 1h30m \(its own\)\n/);

  r = await flotilla(config, ['fleet', 'window', 'set', slug, '--cron', '0 2 * *', '--duration', '2h']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: invalid cron expression "0 2 \* \*": .* \(UPDATE_WINDOW_INVALID\)\n$/);
  r = await flotilla(config, ['fleet', 'window', 'set', slug, '--cron', '0 2 * * *', '--duration', '2 hours']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /invalid duration "2 hours".*\(VALIDATION_FAILED\)\n$/);
  r = await flotilla(config, [
    'fleet',
    'window',
    'set',
    slug,
    '--cron',
    '0 2 * * *',
    '--duration',
    '1h',
    '--tz',
    'Nowhere',
  ]);
  assert.match(r.stderr, /unknown time zone "Nowhere".*\(UPDATE_WINDOW_INVALID\)\n$/);

  assert.equal((await flotilla(config, ['device', 'window', 'clear', device.uuid])).code, 0);
  r = await flotilla(config, ['device', 'info', device.uuid]);
  assert.match(r.stdout, /\(the fleet's\)/);
  assert.equal((await flotilla(config, ['fleet', 'window', 'clear', slug])).code, 0);
  const fleet = await flotillaJson<Fleet>(config, ['fleet', 'info', slug]);
  assert.equal(fleet.updateWindow, null);
  r = await flotilla(config, ['device', 'info', device.uuid]);
  assert.match(r.stdout, /update window: +-\n/);
});
