import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { startServer } from '@flotilla/server';
import { tempDir, waitFor } from '@flotilla/testkit';
import { startAgent } from './agent.js';
import { buildImage, cleanup, exec, ourContainers, uniqueNamespace } from './test-support/fixtures.js';

/**
 * End to end against the real control plane (packages/server): fleet, config.json and releases made through its
 * user API; the agent registers with the generated config.json, applies release 1, then release 2, and the server
 * sees what the device reports. Images are local (built FROM busybox), so no registry push is involved.
 */
describe('agent against the real flotilla server', () => {
  it('registers from a generated config.json, applies two releases, reports them running', async () => {
    const dir = await tempDir('flotilla-agent-e2e-');
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      dataDir: join(dir.path, 'server'),
      logLevel: false,
    });
    const namespace = uniqueNamespace();
    const nonce = randomBytes(4).toString('hex');
    const images = [`flotilla-agent-e2e/app:r1-${nonce}`, `flotilla-agent-e2e/app:r2-${nonce}`];
    let agent: Awaited<ReturnType<typeof startAgent>> | undefined;
    try {
      const key = server.admin?.apiKey;
      assert.ok(key, 'fresh server bootstraps an admin with an API key');
      // biome-ignore lint/suspicious/noExplicitAny: JSON answers of another package's API, checked by the assertions
      const call = async (method: string, path: string, body?: unknown): Promise<any> => {
        const response = await fetch(`${server.url}${path}`, {
          method,
          headers: {
            authorization: `Bearer ${key}`,
            ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
        const text = await response.text();
        assert.ok(response.ok, `${method} ${path} → ${response.status} ${text}`);
        return text ? JSON.parse(text) : undefined;
      };
      await Promise.all(images.map((img, i) => buildImage(img, `r${i + 1}`)));
      const slug = `e2e-${nonce}`;
      await call('POST', '/api/v1/fleets', { name: slug, slug });
      const configJson = await call('POST', `/api/v1/fleets/${slug}/config-json`, {});
      const configPath = join(dir.path, 'config.json');
      await writeFile(configPath, JSON.stringify(configJson));
      const release = (n: number) =>
        call('POST', `/api/v1/fleets/${slug}/releases`, {
          composition: {
            services: { main: { image: images[n - 1], environment: { RELEASE: String(n) }, volumes: ['data:/data'] } },
            volumes: { data: {} },
          },
          images: { main: images[n - 1] },
          status: 'success',
        }) as Promise<{ commit: string }>;
      const r1 = await release(1);

      agent = await startAgent({
        configPath,
        dataDir: join(dir.path, 'agent'),
        namespace,
        pollIntervalMs: 500,
        reportIntervalMs: 200,
        apiPort: 0,
        logger: pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' }),
      });
      const uuid = agent.state().uuid;
      const runningMarker = async (): Promise<string | undefined> => {
        const list = await ourContainers(namespace);
        if (list.length !== 1 || list[0]?.State !== 'running') return undefined;
        return (await exec(list[0].Id, 'cat /release')).trim();
      };
      await waitFor('release 1 running', async () => (await runningMarker()) === 'r1', { timeoutMs: 60_000 });
      await waitFor(
        'server sees release 1 applied',
        async () => (await call('GET', `/api/v1/devices/${uuid}`)).runningRelease === r1.commit,
        { timeoutMs: 30_000 },
      );
      // Logs and actions over the real routes: the agent's system lines reach the server's log store, and an action
      // sent through the user API runs on the device over its WebSocket and is recorded as done.
      await waitFor(
        'agent system lines on the server',
        async () => {
          const { items } = (await call('GET', `/api/v1/devices/${uuid}/logs?tail=200`)) as {
            items: Array<{ message: string; isSystem: boolean }>;
          };
          return items.some((l) => l.isSystem && l.message === "Service started 'main'");
        },
        { timeoutMs: 30_000 },
      );
      await waitFor('device connected for actions', () => agent?.state().remoteActionsConnected === true, {
        timeoutMs: 30_000,
      });
      const action = (await call('POST', `/api/v1/devices/${uuid}/actions`, { action: 'identify' })) as { id: number };
      await waitFor(
        'identify done',
        async () => (await call('GET', `/api/v1/devices/${uuid}/actions/${action.id}`)).status === 'done',
        { timeoutMs: 30_000 },
      );

      const main = (await ourContainers(namespace))[0] as { Id: string };
      await exec(main.Id, 'echo kept > /data/file');

      const r2 = await release(2);
      agent.triggerUpdate();
      await waitFor('release 2 running', async () => (await runningMarker()) === 'r2', { timeoutMs: 60_000 });
      await waitFor(
        'server sees release 2 applied',
        async () => (await call('GET', `/api/v1/devices/${uuid}`)).runningRelease === r2.commit,
        { timeoutMs: 30_000 },
      );
      const now = (await ourContainers(namespace))[0] as { Id: string };
      assert.equal((await exec(now.Id, 'cat /data/file')).trim(), 'kept');
      assert.equal((await exec(now.Id, 'echo $RELEASE')).trim(), '2');
    } finally {
      await agent?.stop();
      await cleanup(namespace, images);
      await server.close();
      await dir.remove();
    }
  });
});
