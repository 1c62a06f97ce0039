import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startServer } from '@flotilla/server';
import { seedDevices } from '@flotilla/server/testing';
import { tempDir } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

test('device list shows every device of a fleet larger than one page of the server', async () => {
  const server = await startServer({ host: '127.0.0.1', port: 0 });
  const dir = await tempDir('flotilla-cli-devices-');
  try {
    const config = join(dir.path, 'cli');
    assert.ok(server.admin);
    assert.equal((await flotilla(config, ['login', '--url', server.url, '--api-key', server.admin.apiKey])).code, 0);
    const fleet = await flotillaJson<{ id: number }>(config, [
      'fleet',
      'create',
      'big',
      '--device-type',
      'generic-amd64',
    ]);
    // More than the largest page (1,000), so the CLI must ask for the rest.
    const seeded = await seedDevices(server.app.flotilla.db, fleet.id, 1_234);
    const listed = await flotillaJson<{ uuid: string }[]>(config, ['device', 'list', '--fleet', 'big']);
    assert.equal(listed.length, 1_234);
    assert.deepEqual(new Set(listed.map((d) => d.uuid)), new Set(seeded.map((d) => d.uuid)));
    assert.equal((await flotillaJson<unknown[]>(config, ['device', 'list'])).length, 1_234);
  } finally {
    await server.close();
    await dir.remove();
  }
});
