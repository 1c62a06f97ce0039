import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import pino from 'pino';
import { configJsonSchema, generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { apiCall, selfSignedServer } from '@flotilla/server/testing';
import { run, tempDir, waitFor } from '@flotilla/testkit';
import { startAgent } from '../agent.js';
import { buildImage, cleanup, exec, ourContainers, uniqueNamespace } from '../test-support/fixtures.js';
import { controlPlaneCas } from '../util/trust.js';
import { HttpControlPlane } from './control-plane.js';

test('an agent given balenaRootCA in config.json provisions, polls, reports, ships logs and connects over HTTPS', async () => {
  const dir = await tempDir('flotilla-agent-tls-');
  const tls = await selfSignedServer('flotilla-tls-server-');
  const { server } = tls;
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
    await tls.close();
    await dir.remove();
  }
});

test("the engine pulls a release's image from the server's HTTPS registry with the device's credentials", async () => {
  const dir = await tempDir('flotilla-agent-tls-pull-');
  const tls = await selfSignedServer('flotilla-tls-server-');
  const { server } = tls;
  const namespace = uniqueNamespace();
  const nonce = randomBytes(4).toString('hex');
  const local = `flotilla-agent-tls/app:${nonce}`;
  const host = new URL(server.url).host;
  const pushed: string[] = [];
  let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
  try {
    const key = server.admin?.apiKey ?? '';
    const plain = server.plainUrl ?? '';
    const slug = `tlspull-${nonce}`;
    assert.equal((await apiCall(plain, 'POST', '/api/v1/fleets', key, { name: slug, slug })).status, 201);
    await buildImage(local, 'over-tls');
    // WARNING: dockerd counts 127.0.0.0/8 as an insecure registry and skips certificate checks there, so this proves
    // pulls over HTTPS with device credentials, not the engine's trust in the CA: a device reaching the server by
    // name needs the CA where its engine looks (docs/protocol.md, TLS).
    const dockerConfig = await tempDir('flotilla-agent-tls-docker-');
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig.path };
    const repo = `${host}/${slug}/main`;
    try {
      await run('docker', ['login', host, '-u', 'admin', '--password-stdin'], { input: key, env });
      await run('docker', ['tag', local, `${repo}:pushed`], { env });
      pushed.push(`${repo}:pushed`);
      const { stdout } = await run('docker', ['push', `${repo}:pushed`], { env });
      const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
      assert.ok(digest, stdout);
      pushed.push(`${repo}@${digest}`);
    } finally {
      await dockerConfig.remove();
    }
    // Only the registry holds the image now: the device's engine must pull it.
    await run('docker', ['rmi', local, `${repo}:pushed`]);
    assert.equal((await run('docker', ['images', '-q', repo])).stdout.trim(), '', 'no local copy of the image left');
    const image = pushed[1] ?? '';
    const release = await apiCall(plain, 'POST', `/api/v1/fleets/${slug}/releases`, key, {
      composition: { services: { main: { image } } },
      images: { main: image },
      status: 'success',
    });
    assert.equal(release.status, 201, JSON.stringify(release.data));
    const config = (await apiCall(plain, 'POST', `/api/v1/fleets/${slug}/config-json`, key, {})).data;
    const configPath = join(dir.path, 'config.json');
    await writeFile(configPath, JSON.stringify(config));
    agent = await startAgent({
      configPath,
      dataDir: join(dir.path, 'agent'),
      namespace,
      pollIntervalMs: 500,
      reportIntervalMs: 200,
      apiPort: 0,
      logger: pino({ level: 'silent' }),
    });
    const uuid = agent.state().uuid;
    await waitFor(
      'the pulled release running',
      async () => {
        const list = await ourContainers(namespace);
        return list[0]?.State === 'running' && (await exec(list[0].Id, 'cat /release')).trim() === 'over-tls';
      },
      { timeoutMs: 60_000 },
    );
    await waitFor(
      'the server to see the release applied',
      async () =>
        (await apiCall(plain, 'GET', `/api/v1/devices/${uuid}`, key)).data.runningRelease === release.data.commit,
      { timeoutMs: 30_000 },
    );
  } finally {
    await agent?.stop();
    await cleanup(namespace, pushed);
    await tls.close();
    await dir.remove();
  }
});
