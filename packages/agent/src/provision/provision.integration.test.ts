import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { generateDeviceUuid } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { ensureIdentity, readConfig } from '../config/config-file.js';
import { HttpControlPlane } from '../control-plane/control-plane.js';
import { ControlPlane } from '../test-support/control-plane.js';
import { provision } from './provision.js';

const log = pino({ level: 'silent' });

describe('provision() over HTTP against the real control plane', () => {
  it('409: finds itself and exchanges the provisioning key for its own device key', async () => {
    const cp = await ControlPlane.start();
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      const generated = await cp.writeConfig(path);
      const provisioningKey = generated.provisioningApiKey as string;
      const uuid = generateDeviceUuid();
      // Registered before, with another key (a device that lost its config.json after registering).
      const earlier = await fetch(`${cp.server.url}/device/register`, {
        method: 'POST',
        headers: { authorization: `Bearer ${provisioningKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          uuid,
          api_key: 'some-older-key-0123456789',
          application: cp.fleet.id,
          device_type: 'generic-amd64',
        }),
      });
      assert.equal(earlier.status, 201);
      await writeFile(path, JSON.stringify({ ...generated, uuid, deviceApiKey: 'new-device-key-0123456789' }));
      const { id } = await cp.device(uuid);
      const file = await provision(await ensureIdentity(await readConfig(path)), new HttpControlPlane(cp.url), log);
      assert.equal(file.config.deviceId, id);
      assert.ok(cp.tap.requests.includes(`POST /api-key/device/${id}/device-key`));
      const stateWith = async (key: string) =>
        (
          await fetch(`${cp.server.url}/device/v3/${uuid}/state`, {
            headers: { authorization: `Bearer ${key}` },
          })
        ).status;
      assert.equal(await stateWith('new-device-key-0123456789'), 200, 'the new key is the device key now');
      assert.equal(await stateWith('some-older-key-0123456789'), 401, 'the older one no longer is');
      assert.equal((await readConfig(path)).config.deviceId, id, 'written back');
      // Idempotent: a registered device does not register again.
      const before = cp.tap.requests.length;
      await provision(file, new HttpControlPlane(cp.url), log);
      assert.equal(cp.tap.requests.length, before);
    } finally {
      await cp.close();
      await dir.remove();
    }
  });

  it('a wrong provisioning key is an error, not a registration', async () => {
    const cp = await ControlPlane.start();
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      await cp.writeConfig(path, { provisioningApiKey: 'wrong-provisioning-key-0123' });
      await assert.rejects(
        provision(await ensureIdentity(await readConfig(path)), new HttpControlPlane(cp.url), log),
        /401/,
      );
      assert.deepEqual((await cp.api('GET', `/api/v1/devices?fleet=${cp.fleet.slug}`)).items, []);
    } finally {
      await cp.close();
      await dir.remove();
    }
  });
});
