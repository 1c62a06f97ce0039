import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { configJsonSchema, generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { startServer } from '@flotilla/server';
import { apiCall } from '@flotilla/server/testing';
import { tempDir, waitFor } from '@flotilla/testkit';
import { startAgent } from '../agent.js';
import { controlPlaneCas } from '../util/trust.js';
import { HttpControlPlane } from './control-plane.js';

test('an agent given balenaRootCA in config.json provisions, polls, reports, ships logs and connects over HTTPS', async () => {
  const dir = await tempDir('flotilla-agent-tls-');
  const server = await startServer({
    dataDir: join(dir.path, 'server'),
    host: '127.0.0.1',
    port: 0,
    tls: 'self-signed',
    plainHttp: { host: '127.0.0.1', port: 0 },
    logLevel: false,
  });
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    const key = server.admin?.apiKey ?? '';
    const plain = server.plainUrl ?? '';
    const slug = `tls-${randomBytes(3).toString('hex')}`;
    assert.equal((await apiCall(plain, 'POST', '/api/v1/fleets', key, { name: slug, slug })).status, 201);
    const made = await apiCall(plain, 'POST', `/api/v1/fleets/${slug}/config-json`, key, {});
    const config = configJsonSchema.parse(made.data);
    assert.equal(config.apiEndpoint, server.url);
    assert.ok(config.balenaRootCA);

    // The same server without the CA: every request fails on the certificate, so what follows proves the CA is used.
    const untrusting = new HttpControlPlane(server.url);
    const uuid = generateDeviceUuid();
    await assert.rejects(
      untrusting.register(
        { uuid, api_key: generateKey(), application: Number(config.applicationId), device_type: 'generic-amd64' },
        config.provisioningApiKey ?? '',
      ),
      /certificate/,
    );
    assert.equal(controlPlaneCas(undefined), undefined, "without balenaRootCA, Node's own roots");

    const configPath = join(dir.path, 'config.json');
    await writeFile(configPath, JSON.stringify(config));
    agent = await startAgent({
      configPath,
      dataDir: join(dir.path, 'agent'),
      namespace: `tls${randomBytes(3).toString('hex')}`,
      pollIntervalMs: 500,
      reportIntervalMs: 200,
      apiPort: 0,
      logger: pino({ level: 'silent' }),
    });
    const running = agent;
    const state = await waitFor(
      'the agent to poll, report and hold its WebSocket over HTTPS',
      () => {
        const s = running.state();
        return s.remoteActionsConnected && s.reportsSent > 0 && s.passes > 0 ? s : undefined;
      },
      { timeoutMs: 20_000 },
    );
    // An action travels down the WebSocket; the (dry-run) reboot's system log line comes back up the log stream.
    const created = await apiCall(plain, 'POST', `/api/v1/devices/${state.uuid}/actions?wait=15000`, key, {
      action: 'reboot',
    });
    assert.equal(created.status, 201, JSON.stringify(created.data));
    const action = await apiCall(plain, 'GET', `/api/v1/devices/${state.uuid}/actions/${created.data.id}`, key);
    assert.equal(action.data.status, 'done', JSON.stringify(action.data));
    await waitFor('the reboot line to be shipped over HTTPS', () => running.state().logsShipped > 0, {
      timeoutMs: 15_000,
    });
    const logs = await apiCall(plain, 'GET', `/api/v1/devices/${state.uuid}/logs`, key);
    assert.ok(
      logs.data.items.some((l: { message: string }) => l.message === 'Rebooting'),
      JSON.stringify(logs.data.items),
    );
  } finally {
    await agent?.stop();
    await server.close();
    await dir.remove();
  }
});
