import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { tempDir } from '@flotilla/testkit';
import { ensureIdentity, readConfig } from '../config/config-file.js';
import { HttpControlPlane } from '../control-plane/control-plane.js';
import { FakeControlPlane } from '../test-support/fake-control-plane.js';
import { provision } from './provision.js';

const log = pino({ level: 'silent' });

describe('provision() over HTTP against the fake control plane', () => {
  it('409: finds itself and exchanges the provisioning key for its own device key', async () => {
    const cp = new FakeControlPlane();
    await cp.start();
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      const uuid = 'b'.repeat(32);
      await writeFile(
        path,
        JSON.stringify({
          apiEndpoint: cp.url,
          apiKey: cp.provisioningKey,
          applicationId: 3,
          uuid,
          deviceApiKey: 'new-device-key-0123456789',
        }),
      );
      const id = cp.addDevice(uuid, 'some-older-key-0123456789');
      const file = await provision(await ensureIdentity(await readConfig(path)), new HttpControlPlane(cp.url), log);
      assert.equal(file.config.deviceId, id);
      assert.equal(cp.devices.get(uuid)?.apiKey, 'new-device-key-0123456789');
      assert.ok(cp.requests.includes(`POST /api-key/device/${id}/device-key`));
      assert.equal((await readConfig(path)).config.deviceId, id, 'written back');
      // Idempotent: a registered device does not register again.
      const before = cp.requests.length;
      await provision(file, new HttpControlPlane(cp.url), log);
      assert.equal(cp.requests.length, before);
    } finally {
      await cp.stop();
      await dir.remove();
    }
  });

  it('a wrong provisioning key is an error, not a registration', async () => {
    const cp = new FakeControlPlane();
    await cp.start();
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      await writeFile(path, JSON.stringify({ apiEndpoint: cp.url, provisioningApiKey: 'wrong', applicationId: 3 }));
      await assert.rejects(
        provision(await ensureIdentity(await readConfig(path)), new HttpControlPlane(cp.url), log),
        /401/,
      );
      assert.equal(cp.devices.size, 0);
    } finally {
      await cp.stop();
      await dir.remove();
    }
  });
});
