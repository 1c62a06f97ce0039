import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { tempDir } from '@flotilla/testkit';
import { assertProvisionable, ensureIdentity, readConfig } from './config-file.js';

describe('config.json', () => {
  it('bad JSON and bad fields are INVALID_CONFIG_JSON', async () => {
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      await writeFile(path, '{nope');
      await assert.rejects(
        readConfig(path),
        (e: unknown) => e instanceof FlotillaError && e.code === 'INVALID_CONFIG_JSON',
      );
      await writeFile(path, JSON.stringify({ apiEndpoint: 'ftp://x', uuid: 'NOT-HEX' }));
      await assert.rejects(
        readConfig(path),
        (e: unknown) => e instanceof FlotillaError && e.code === 'INVALID_CONFIG_JSON' && /uuid/.test(e.message),
      );
      await assert.rejects(
        readConfig(join(dir.path, 'missing.json')),
        (e: unknown) => e instanceof FlotillaError && e.code === 'INVALID_CONFIG_JSON',
      );
    } finally {
      await dir.remove();
    }
  });

  it('generates uuid and device key once, keeps unknown keys and value types', async () => {
    const dir = await tempDir();
    try {
      const path = join(dir.path, 'config.json');
      await writeFile(path, JSON.stringify({ applicationId: '12', custom: { deep: true } }));
      const first = await ensureIdentity(await readConfig(path));
      const raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      assert.match(String(raw.uuid), /^[0-9a-f]{32}$/);
      assert.ok(String(raw.deviceApiKey).length >= 16);
      assert.equal(raw.applicationId, '12');
      assert.deepEqual(raw.custom, { deep: true });
      const second = await ensureIdentity(await readConfig(path));
      assert.equal(second.config.uuid, first.config.uuid);
      assert.equal(second.config.deviceApiKey, first.config.deviceApiKey);
    } finally {
      await dir.remove();
    }
  });

  it('managed but unregistered without provisioning key or fleet: INVALID_CONFIG_JSON', async () => {
    const file = (config: Record<string, unknown>) => ({ path: 'config.json', raw: config, config });
    const isInvalid = (e: unknown) => e instanceof FlotillaError && e.code === 'INVALID_CONFIG_JSON';
    assert.throws(() => assertProvisionable(file({ apiEndpoint: 'http://x', applicationId: 1 })), isInvalid);
    assert.throws(() => assertProvisionable(file({ apiEndpoint: 'http://x', apiKey: 'k' })), isInvalid);
    assertProvisionable(file({ apiEndpoint: 'http://x', apiKey: 'k', applicationId: 1 }));
    assertProvisionable(file({ apiEndpoint: 'http://x', deviceId: 3, registered_at: 1 }));
    assertProvisionable(file({}));
  });
});
