import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { LABELS, configJsonSchema } from '@flotilla/protocol';
import { freePort, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from './agent.js';
import {
  buildImage,
  cleanup,
  docker,
  exec,
  harness,
  ourContainers,
  serviceOf,
  target,
  uniqueAppId,
  type Harness,
} from './test-support/fixtures.js';

const quiet = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

describe('agent against a fake control plane and the real engine', () => {
  let h: Harness;
  let agent: AgentHandle;
  let uuid: string;
  let hostPort: number;
  const appId = uniqueAppId();
  const appUuid = `app${appId}`;
  const imgA = `flotilla-agent-it/main-a:${appId}`;
  const imgB = `flotilla-agent-it/main-b:${appId}`;
  const running = async (): Promise<Map<string, string>> => {
    const list = await ourContainers(h.namespace);
    return new Map(list.filter((c) => c.State === 'running').map((c) => [serviceOf(c), c.Id]));
  };
  const converged = (commit: string) => async (): Promise<boolean> => {
    const app = h.cp.state.get(uuid)?.apps?.[appUuid];
    return app?.release_uuid === commit && app.releases[commit]?.update_status === 'done';
  };

  before(async () => {
    h = await harness({ keepMe: 'untouched' });
    hostPort = await freePort();
    await Promise.all([buildImage(imgA, 'a'), buildImage(imgB, 'b')]);
    agent = await startAgent({
      configPath: h.configPath,
      dataDir: h.dataDir,
      namespace: h.namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      logger: quiet,
      apiPort: 0,
    });
    uuid = agent.state().uuid;
  });

  after(async () => {
    await agent?.stop();
    await cleanup(h.namespace, [imgA, imgB]);
    await h.remove();
  });

  it('registers and writes identity back to config.json, keeping unknown keys', async () => {
    await waitFor('registration', () => h.cp.devices.has(uuid));
    const written = await waitFor('deviceId in config.json', async () => {
      const raw = JSON.parse(await readFile(h.configPath, 'utf8')) as Record<string, unknown>;
      return raw.deviceId !== undefined ? raw : undefined;
    });
    const config = configJsonSchema.parse(written);
    assert.equal(config.uuid, uuid);
    assert.equal(config.deviceId, h.cp.devices.get(uuid)?.id);
    assert.equal(config.deviceApiKey, h.cp.devices.get(uuid)?.apiKey);
    assert.equal(config.provisioningApiKey, h.cp.provisioningKey);
    assert.equal(written.keepMe, 'untouched');
  });

  it('installs a multi-service app: network, volume, depends_on, env, ports; reports done', async () => {
    h.cp.setTarget(
      uuid,
      target({
        appId,
        appUuid,
        commit: 'c1',
        releaseId: 1,
        volumes: ['data'],
        services: {
          web: {
            image: imgA,
            environment: { GREETING: 'hello' },
            composition: { depends_on: ['db'], ports: [`127.0.0.1:${hostPort}:8080`], networks: ['default', 'back'] },
          },
          db: {
            image: imgB,
            labels: { 'com.example.role': 'db' },
            composition: { volumes: ['data:/data'], healthcheck: { test: 'true', interval: '5s' } },
          },
        },
      }),
    );
    agent.triggerUpdate();
    await waitFor('release c1 reported done', converged('c1'), { timeoutMs: 60_000 });
    const ids = await running();
    assert.deepEqual([...ids.keys()].sort(), ['db', 'web']);
    const web = await docker.getContainer(ids.get('web') as string).inspect();
    const db = await docker.getContainer(ids.get('db') as string).inspect();
    assert.ok(web.Config.Env.includes('GREETING=hello'));
    assert.ok(web.Config.Env.includes(`BALENA_DEVICE_UUID=${uuid}`));
    assert.equal(web.HostConfig.RestartPolicy?.Name, 'always');
    assert.ok(web.NetworkSettings.Networks[`${h.namespace}${appId}_default`], 'web on the app default network');
    assert.ok(web.NetworkSettings.Networks[`${h.namespace}${appId}_back`], 'web also on its second network');
    await exec(web.Id, 'ping -c 1 -W 2 db'); // service names resolve on the app network
    assert.equal(web.NetworkSettings.Ports['8080/tcp']?.[0]?.HostPort, String(hostPort), 'port published');
    assert.equal(db.Config.Labels['com.example.role'], 'db');
    assert.equal(db.Config.Labels[LABELS.releaseCommit], 'c1');
    assert.ok(db.Config.Healthcheck?.Test?.includes('true'));
    assert.ok(db.Mounts.some((m) => m.Name === `${h.namespace}${appId}_data` && m.Destination === '/data'));
    assert.ok(new Date(web.State.StartedAt) >= new Date(db.State.StartedAt), 'db (dependency) started first');
    const report = h.cp.state.get(uuid);
    assert.equal(report?.apps?.[appUuid]?.releases.c1?.services.web?.status, 'Running');
    assert.equal(typeof report?.memory_total, 'number');
    // apiPort 0 disables the local API: no port is reported (it said 48484, where nothing listened).
    assert.equal(report?.api_port, null);
    assert.equal(agent.state().apiPort, undefined);
    assert.equal(report?.supervisor_version, '0.1.0');
  });

  it('does not restart anything when nothing changed', async () => {
    const before = await running();
    const passes = agent.state().passes;
    agent.triggerUpdate();
    await waitFor('two more passes', () => agent.state().passes >= passes + 2);
    assert.deepEqual(await running(), before);
    const [web] = await Promise.all([docker.getContainer(before.get('web') as string).inspect()]);
    assert.equal(web.RestartCount, 0);
  });

  it('an env change restarts only the affected service; volume data survives', async () => {
    const before = await running();
    await exec(before.get('db') as string, 'echo precious > /data/file');
    const t = target({
      appId,
      appUuid,
      commit: 'c1',
      releaseId: 1,
      volumes: ['data'],
      services: {
        web: {
          image: imgA,
          environment: { GREETING: 'changed' },
          composition: { depends_on: ['db'], ports: [`127.0.0.1:${hostPort}:8080`] },
        },
        db: {
          image: imgB,
          labels: { 'com.example.role': 'db' },
          composition: { volumes: ['data:/data'], healthcheck: { test: 'true', interval: '5s' } },
        },
      },
    });
    h.cp.setTarget(uuid, t);
    agent.triggerUpdate();
    await waitFor(
      'web recreated',
      async () => {
        const now = await running();
        return now.get('web') !== undefined && now.get('web') !== before.get('web');
      },
      { timeoutMs: 30_000 },
    );
    const after = await running();
    assert.equal(after.get('db'), before.get('db'), 'db untouched');
    assert.ok(
      (await docker.getContainer(after.get('web') as string).inspect()).Config.Env.includes('GREETING=changed'),
    );
    assert.equal((await ourContainers(h.namespace)).length, 2, 'old web container removed');
  });

  it('a new release with swapped images replaces the containers and keeps the named volume', async () => {
    h.cp.setTarget(
      uuid,
      target({
        appId,
        appUuid,
        commit: 'c2',
        releaseId: 2,
        volumes: ['data'],
        services: { web: { image: imgB }, db: { image: imgA, composition: { volumes: ['data:/data'] } } },
      }),
    );
    agent.triggerUpdate();
    await waitFor('release c2 reported done', converged('c2'), { timeoutMs: 60_000 });
    const now = await running();
    assert.equal((await exec(now.get('db') as string, 'cat /release /data/file')).trim(), 'a\nprecious');
    assert.equal((await ourContainers(h.namespace)).length, 2);
  });

  it('keeps apps running while the control plane is unreachable, and reports again when it is back', async () => {
    const before = await running();
    const port = h.cp.port;
    await h.cp.stop();
    agent.triggerUpdate();
    const passes = agent.state().passes;
    await waitFor('a pass while offline', () => agent.state().passes > passes, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(await running(), before);
    const reportsBefore = h.cp.reports.length;
    await h.cp.start(port);
    // A change while it was away: the agent must pick it up once back.
    h.cp.setTarget(
      uuid,
      target({
        appId,
        appUuid,
        commit: 'c3',
        releaseId: 3,
        volumes: ['data'],
        services: { web: { image: imgB }, db: { image: imgA, composition: { volumes: ['data:/data'] } } },
      }),
    );
    agent.triggerUpdate();
    await waitFor('release c3 reported done', converged('c3'), { timeoutMs: 60_000 });
    assert.ok(h.cp.reports.length > reportsBefore);
    // Same images and config, new release: metadata only, no restart.
    assert.deepEqual(await running(), before);
  });

  it('an invalid target state is rejected and reported; the running release stays', async () => {
    const before = await running();
    const bad = target({
      appId,
      appUuid,
      commit: 'cbad',
      releaseId: 9,
      services: { web: { image: imgB, composition: { ports: ['not a port'] } } },
    });
    h.cp.setTarget(uuid, bad);
    agent.triggerUpdate();
    await waitFor(
      'rejected reported',
      () => h.cp.state.get(uuid)?.apps?.[appUuid]?.releases.cbad?.update_status === 'rejected',
      { timeoutMs: 15_000 },
    );
    assert.deepEqual(await running(), before);
    assert.equal(agent.state().targetCommits[appUuid], 'c3', 'last good target kept');
    h.cp.setTarget(
      uuid,
      target({
        appId,
        appUuid,
        commit: 'c3',
        releaseId: 3,
        volumes: ['data'],
        services: { web: { image: imgB }, db: { image: imgA, composition: { volumes: ['data:/data'] } } },
      }),
    );
    agent.triggerUpdate();
    await waitFor(
      'rejection cleared from the report',
      () => h.cp.state.get(uuid)?.apps?.[appUuid]?.releases.cbad === undefined,
      { timeoutMs: 15_000 },
    );
  });

  it('restarted while the control plane is down: applies the persisted target (repairs drift)', async () => {
    await agent.stop();
    const port = h.cp.port;
    await h.cp.stop();
    const before = await running();
    // Drift while the agent is down: someone removes a service container.
    await docker.getContainer(before.get('web') as string).remove({ force: true });
    agent = await startAgent({
      configPath: h.configPath,
      dataDir: h.dataDir,
      namespace: h.namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      logger: quiet,
      apiPort: 0,
    });
    await waitFor('web recreated offline', async () => (await running()).has('web'), { timeoutMs: 30_000 });
    assert.equal((await running()).get('db'), before.get('db'), 'db untouched');
    assert.equal(agent.state().targetCommits[appUuid], 'c3');
    await h.cp.start(port);
  });

  it('removes the app, its network and volume when it leaves the target', async () => {
    h.cp.setTarget(uuid, { name: 'test-device', config: {}, apps: {} });
    agent.triggerUpdate();
    await waitFor(
      'everything gone',
      async () =>
        (await ourContainers(h.namespace)).length === 0 &&
        (await docker.listVolumes({ filters: JSON.stringify({ name: [`${h.namespace}${appId}_data`] }) })).Volumes
          .length === 0,
      { timeoutMs: 30_000 },
    );
    const networks = await docker.listNetworks({ filters: JSON.stringify({ name: [`${h.namespace}${appId}_`] }) });
    assert.equal(networks.length, 0);
  });
});
