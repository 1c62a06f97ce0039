import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { configJsonSchema, decodeRootCa } from '@flotilla/protocol';
import { apiCall, selfSignedServer } from '@flotilla/server/testing';
import { tempDir } from '@flotilla/testkit';
import { flotilla } from '../test-support/cli-runner.js';

test('the CLI reaches a server with its own CA through login --ca (or FLOTILLA_CA), and refuses it without', async () => {
  const dir = await tempDir('flotilla-cli-tls-');
  const tls = await selfSignedServer('flotilla-tls-server-');
  const { server } = tls;
  try {
    const key = server.admin?.apiKey ?? '';
    assert.equal(
      (await apiCall(server.plainUrl ?? '', 'POST', '/api/v1/fleets', key, { name: 'T', slug: 't' })).status,
      201,
    );
    const caFile = join(dir.path, 'ca.pem');
    await writeFile(caFile, server.rootCa ?? '');
    const configDir = join(dir.path, 'cli');

    const refused = await flotilla(configDir, ['login', '--url', server.url, '--api-key', key]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /NETWORK_ERROR/);

    const login = await flotilla(configDir, ['login', '--url', server.url, '--api-key', key, '--ca', caFile]);
    assert.equal(login.code, 0, login.stderr);
    const stored = JSON.parse(await readFile(join(configDir, 'credentials.json'), 'utf8'));
    assert.equal(stored.ca, server.rootCa, 'the CA is kept with the login');

    // Later commands trust the stored CA: the config.json they fetch carries it for the device.
    const output = join(dir.path, 'config.json');
    const made = await flotilla(configDir, ['os', 'config', 't', '-o', output]);
    assert.equal(made.code, 0, made.stderr);
    const config = configJsonSchema.parse(JSON.parse(await readFile(output, 'utf8')));
    assert.equal(decodeRootCa(config.balenaRootCA ?? '')?.[0], server.rootCa?.trim());

    // FLOTILLA_CA overrides what is stored: a file that is no certificate is refused before any request.
    await writeFile(join(dir.path, 'bad.pem'), 'not a certificate');
    const bad = await flotilla(configDir, ['whoami'], { env: { FLOTILLA_CA: join(dir.path, 'bad.pem') } });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /holds no PEM certificate \(VALIDATION_FAILED\)/);
  } finally {
    await tls.close();
    await dir.remove();
  }
});
