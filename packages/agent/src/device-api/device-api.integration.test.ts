import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, tempDir, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import { DryRunHostPower } from '../host/host-power.js';
import {
  buildImage,
  buildTalkingImage,
  cleanup,
  docker,
  exec,
  ourContainers,
  serviceOf,
  target,
  uniqueAppId,
  uniqueNamespace,
  quiet,
} from '../test-support/fixtures.js';

interface Answer {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test convenience over varied answers
  json: () => any;
}

/**
 * Every route of the local device API against a real agent (unmanaged development device, local target) on the
 * real engine, with a 2-service app: web depends on db, db has a named volume.
 */
describe('local device API against a real agent and engine', () => {
  const namespace = uniqueNamespace();
  const appId = uniqueAppId();
  const appUuid = `app${appId}`;
  const imgWeb = `flotilla-agent-it/api-web:${appId}`;
  const imgDb = `flotilla-agent-it/api-db:${appId}`;
  const power = new DryRunHostPower(quiet);
  let dir: { path: string; remove: () => Promise<void> };
  let agent: AgentHandle;
  let startOptions: Parameters<typeof startAgent>[0];
  let base: string;
  let key: string;
  let prodAgent: AgentHandle | undefined;
  let prodDir: { path: string; remove: () => Promise<void> } | undefined;

  const call = async (
    method: string,
    path: string,
    body?: unknown,
    o: { auth?: boolean; url?: string } = {},
  ): Promise<Answer> => {
    const headers: Record<string, string> = {};
    if (o.auth !== false) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${o.url ?? base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await response.text();
    return { status: response.status, text, json: () => JSON.parse(text) };
  };
  const containers = async (): Promise<Map<string, { id: string; state: string }>> =>
    new Map((await ourContainers(namespace)).map((c) => [serviceOf(c), { id: c.Id, state: c.State }]));
  const startedAt = async (id: string): Promise<number> =>
    Date.parse((await docker.getContainer(id).inspect()).State.StartedAt);
  const bothRunning = async (): Promise<Map<string, { id: string; state: string }> | undefined> => {
    const now = await containers();
    return now.size === 2 && [...now.values()].every((c) => c.state === 'running') ? now : undefined;
  };
  const passes = async (n: number): Promise<void> => {
    const start = agent.state().passes;
    agent.triggerUpdate();
    await waitFor(
      `${n} more passes`,
      () => {
        if (agent.state().passes < start + n) agent.triggerUpdate();
        return agent.state().passes >= start + n;
      },
      { timeoutMs: 20_000 },
    );
  };
  const theTarget = target({
    appId,
    appUuid,
    commit: 'c1',
    releaseId: 1,
    volumes: ['data'],
    services: {
      web: { image: imgWeb, composition: { depends_on: ['db'] } },
      db: {
        image: imgDb,
        labels: { 'io.balena.features.supervisor-api': '1' },
        composition: { volumes: ['data:/data'] },
      },
    },
  });

  before(async () => {
    await Promise.all([buildTalkingImage(imgWeb), buildImage(imgDb, 'db')]);
    dir = await tempDir('flotilla-agent-api-');
    const configPath = join(dir.path, 'config.json');
    await writeFile(configPath, JSON.stringify({ developmentMode: true }));
    const port = await freePort();
    startOptions = {
      configPath,
      dataDir: join(dir.path, 'data'),
      namespace,
      apiPort: port,
      apiAddress: '127.0.0.1',
      pollIntervalMs: 500,
      logger: quiet,
      hostPower: power,
    };
    agent = await startAgent(startOptions);
    assert.equal(agent.state().apiPort, port);
    base = `http://127.0.0.1:${port}`;
  });

  after(async () => {
    await agent?.stop();
    await prodAgent?.stop();
    await cleanup(namespace, [imgWeb, imgDb]);
    await dir?.remove();
    await prodDir?.remove();
  });

  it('local mode: POST /v2/local/target-state (no key on a development device) installs the app', async () => {
    const posted = await call('POST', '/v2/local/target-state', { local: theTarget }, { auth: false });
    assert.equal(posted.status, 200, posted.text);
    const ids = await waitFor('web and db running', bothRunning, { timeoutMs: 60_000 });
    assert.ok((await startedAt(ids.get('web')!.id)) >= (await startedAt(ids.get('db')!.id)), 'db (dependency) first');
    // The key (and port) the agent gives apps with the supervisor-api feature, as an app on the device gets it.
    const env = (await docker.getContainer(ids.get('db')!.id).inspect()).Config.Env;
    key = env.find((e) => e.startsWith('BALENA_SUPERVISOR_API_KEY='))!.slice('BALENA_SUPERVISOR_API_KEY='.length);
    assert.ok(env.includes(`BALENA_SUPERVISOR_PORT=${agent.state().apiPort}`));
    const got = await call('GET', '/v2/local/target-state', undefined, { auth: false });
    assert.equal(got.json().state.local.apps[appUuid].id, appId);
  });

  it('ping and healthy are open; the rest needs the key; version', async () => {
    assert.equal((await call('GET', '/ping', undefined, { auth: false })).text, 'OK');
    assert.equal((await call('GET', '/v1/healthy', undefined, { auth: false })).status, 200);
    assert.equal((await call('GET', '/v1/device', undefined, { auth: false })).status, 401);
    assert.equal((await call('GET', `/v1/device?apikey=${key}`, undefined, { auth: false })).status, 200);
    const version = await call('GET', '/v2/version');
    assert.deepEqual(version.json(), { status: 'success', version: '0.1.0' });
  });

  it('GET /v1/device, /v2/applications/state and /v2/state/status describe the running app', async () => {
    await passes(1);
    const device = (await call('GET', '/v1/device')).json();
    assert.equal(device.status, 'Idle');
    assert.equal(device.commit, 'c1');
    assert.equal(device.api_port, agent.state().apiPort);
    assert.equal(device.update_pending, false);
    assert.equal(device.supervisor_version, '0.1.0');
    const apps = (await call('GET', '/v2/applications/state')).json();
    assert.equal(apps.testapp.appId, appId);
    assert.equal(apps.testapp.commit, 'c1');
    assert.equal(apps.testapp.services.web.status, 'Running');
    assert.equal(apps.testapp.services.db.status, 'Running');
    const status = (await call('GET', '/v2/state/status')).json();
    assert.equal(status.appState, 'applied');
    assert.equal(status.release, 'c1');
    const ids = await containers();
    assert.deepEqual(
      status.containers.map((c: { serviceName: string; containerId: string }) => [c.serviceName, c.containerId]).sort(),
      [...ids].map(([name, c]) => [name, c.id]).sort(),
    );
  });

  it('host-config GET/PATCH (hostname, dry run)', async () => {
    const before = (await call('GET', '/v1/device/host-config')).json();
    assert.equal(typeof before.network.hostname, 'string');
    const patched = await call('PATCH', '/v1/device/host-config', { network: { hostname: 'api-test-host' } });
    assert.equal(patched.status, 200);
    assert.equal((await call('GET', '/v1/device/host-config')).json().network.hostname, 'api-test-host');
    assert.equal(agent.state().hostname, 'api-test-host');
  });

  it('local logs stream a container line and system lines; blink is logged', async () => {
    const lines: Array<{ message: string; serviceName: string | null; isSystem: boolean; isStdErr: boolean }> = [];
    const response = await new Promise<IncomingMessage>((resolve, reject) =>
      get(`${base}/v2/local/logs`, resolve).on('error', reject),
    );
    assert.equal(response.statusCode, 200);
    let buffer = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffer += chunk;
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        lines.push(JSON.parse(buffer.slice(0, nl)));
        buffer = buffer.slice(nl + 1);
      }
    });
    try {
      const web = (await containers()).get('web')!.id;
      await exec(web, 'echo hello-from-web > /tmp/say');
      await waitFor(
        'the line from web',
        () => lines.some((l) => l.message === 'hello-from-web' && l.serviceName === 'web' && l.isStdErr),
        { timeoutMs: 15_000 },
      );
      assert.ok(lines.some((l) => /^tick \d+$/.test(l.message) && l.serviceName === 'web' && !l.isStdErr));
      assert.equal((await call('POST', '/v1/blink')).status, 200);
      await waitFor('identify system line', () => lines.some((l) => l.isSystem && l.message === 'Identify requested'));
      assert.deepEqual(power.requests, ['identify']);
    } finally {
      response.destroy();
    }
  });

  it('POST /v1/update reconciles now', async () => {
    const start = agent.state().passes;
    assert.equal((await call('POST', '/v1/update', { force: false })).status, 204);
    await waitFor('a pass', () => agent.state().passes > start);
  });

  for (const route of ['/v1/restart', `/v2/applications/${appId}/restart`]) {
    it(`POST ${route} restarts every service, dependencies first, same containers`, async () => {
      const before = await containers();
      const webBefore = await startedAt(before.get('web')!.id);
      const dbBefore = await startedAt(before.get('db')!.id);
      const answer = await call('POST', route, route === '/v1/restart' ? { appId } : {});
      assert.equal(answer.status, 200, answer.text);
      const after = await waitFor('both running', bothRunning);
      assert.equal(after.get('web')!.id, before.get('web')!.id);
      assert.equal(after.get('db')!.id, before.get('db')!.id);
      const web = await startedAt(after.get('web')!.id);
      const db = await startedAt(after.get('db')!.id);
      assert.ok(web > webBefore && db > dbBefore, 'both restarted');
      assert.ok(web >= db, 'db started before web');
    });
  }

  it('stop-service keeps the service stopped across passes; start-service and restart-service', async () => {
    const stopped = await call('POST', `/v2/applications/${appId}/stop-service`, { serviceName: 'web' });
    assert.equal(stopped.status, 200, stopped.text);
    assert.equal((await containers()).get('web')!.state, 'exited');
    await passes(3);
    assert.equal((await containers()).get('web')!.state, 'exited', 'still stopped after passes');
    assert.equal((await containers()).get('db')!.state, 'running');
    assert.equal((await call('GET', '/v2/applications/state')).json().testapp.services.web.status, 'Stopped');
    const started = await call('POST', `/v2/applications/${appId}/start-service`, { serviceName: 'web' });
    assert.equal(started.status, 200, started.text);
    assert.equal((await containers()).get('web')!.state, 'running');
    const db = (await containers()).get('db')!.id;
    const t0 = await startedAt(db);
    assert.equal((await call('POST', `/v2/applications/${appId}/restart-service`, { serviceName: 'db' })).status, 200);
    assert.ok((await startedAt(db)) > t0);
    assert.equal((await containers()).get('db')!.id, db);
    assert.equal(
      (await call('POST', `/v2/applications/${appId}/restart-service`, { serviceName: 'nope' })).status,
      404,
    );
  });

  it('a stopped service stays stopped across an agent restart on the same data dir until started again', async () => {
    const stopped = await call('POST', `/v2/applications/${appId}/stop-service`, { serviceName: 'web' });
    assert.equal(stopped.status, 200, stopped.text);
    const web = (await containers()).get('web')!.id;
    await agent.stop();
    // Same data dir, config and port (the port is part of the services' config, so of the hold's signature).
    agent = await startAgent(startOptions);
    await passes(2);
    const now = await containers();
    assert.equal(now.get('web')!.id, web, 'same container, not re-created');
    assert.equal(now.get('web')!.state, 'exited', 'still stopped after the restart and its passes');
    assert.equal(now.get('db')!.state, 'running');
    assert.equal((await call('GET', '/v2/applications/state')).json().testapp.services.web.status, 'Stopped');
    const started = await call('POST', `/v2/applications/${appId}/start-service`, { serviceName: 'web' });
    assert.equal(started.status, 200, started.text);
    assert.equal((await containers()).get('web')!.state, 'running');
    await passes(1);
    assert.equal((await containers()).get('web')!.state, 'running', 'the released hold does not stop it again');
  });

  for (const route of ['/v1/purge', `/v2/applications/${appId}/purge`]) {
    it(`POST ${route} empties the app's volume; the app comes back`, async () => {
      const before = await containers();
      await exec(before.get('db')!.id, 'echo precious > /data/file');
      const answer = await call('POST', route, route === '/v1/purge' ? { appId } : {});
      assert.equal(answer.status, 200, answer.text);
      const after = await waitFor(
        'app back with new containers',
        async () => {
          const now = await bothRunning();
          return now && now.get('db')!.id !== before.get('db')!.id ? now : undefined;
        },
        { timeoutMs: 30_000 },
      );
      assert.equal((await exec(after.get('db')!.id, 'ls /data')).trim(), '', 'volume emptied');
    });
  }

  it('an update lock answers 423 to every killing action; force overrides it', async () => {
    const db = (await containers()).get('db')!.id;
    await exec(db, 'touch /tmp/balena/updates.lock');
    try {
      const refused = [
        await call('POST', '/v1/restart', { appId }),
        await call('POST', `/v2/applications/${appId}/restart`),
        await call('POST', '/v1/purge', { appId }),
        await call('POST', `/v2/applications/${appId}/purge`),
        await call('POST', `/v2/applications/${appId}/stop-service`, { serviceName: 'web' }),
        await call('POST', `/v2/applications/${appId}/restart-service`, { serviceName: 'web' }),
        await call('POST', '/v1/reboot'),
        await call('POST', '/v1/shutdown'),
      ];
      for (const r of refused) {
        assert.equal(r.status, 423, r.text);
        assert.equal(r.json().error.code, 'UPDATE_LOCKED');
      }
      assert.equal((await containers()).get('db')!.id, db);
      assert.deepEqual(power.requests, ['identify'], 'no power action under the lock');
      const t0 = await startedAt(db);
      const forced = await call('POST', `/v2/applications/${appId}/restart-service`, {
        serviceName: 'db',
        force: true,
      });
      assert.equal(forced.status, 200, forced.text);
      assert.ok((await startedAt(db)) > t0, 'forced restart happened');
    } finally {
      await exec(db, 'rm -f /tmp/balena/updates.lock');
    }
  });

  it('reboot and shutdown answer 202 and run dry', async () => {
    assert.equal((await call('POST', '/v1/reboot')).status, 202);
    assert.equal((await call('POST', '/v1/shutdown', { force: true })).status, 202);
    await waitFor(
      'both power requests',
      () => power.requests.includes('reboot') && power.requests.includes('shutdown'),
    );
    assert.equal((await bothRunning())?.size, 2, 'dry run: nothing stopped');
  });

  it('a production device refuses local mode (403) and still checks the key', async () => {
    prodDir = await tempDir('flotilla-agent-api-prod-');
    const configPath = join(prodDir.path, 'config.json');
    await writeFile(configPath, JSON.stringify({ developmentMode: false }));
    const port = await freePort();
    prodAgent = await startAgent({
      configPath,
      dataDir: join(prodDir.path, 'data'),
      namespace: uniqueNamespace(),
      apiPort: port,
      apiAddress: '127.0.0.1',
      logger: quiet,
    });
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await call('GET', '/v2/local/target-state', undefined, { auth: false, url })).status, 401);
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(prodDir.path, 'data', 'agent.sqlite'), { readonly: true });
    const prodKey = JSON.parse(
      db.prepare<[], { value: string }>("SELECT value FROM kv WHERE key = 'secret:supervisorApiKey'").get()!.value,
    ) as string;
    db.close();
    const headers = { authorization: `Bearer ${prodKey}`, 'content-type': 'application/json' };
    const got = await fetch(`${url}/v2/local/target-state`, { headers });
    assert.equal(got.status, 403);
    assert.equal(((await got.json()) as { error: { code: string } }).error.code, 'LOCAL_MODE_DISABLED');
    const posted = await fetch(`${url}/v2/local/target-state`, {
      method: 'POST',
      headers,
      body: JSON.stringify(theTarget),
    });
    assert.equal(posted.status, 403);
    assert.equal((await fetch(`${url}/v2/local/logs`, { headers })).status, 403);
  });
});
