import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { LABELS, configJsonSchema } from '@flotilla/protocol';
import { freePort, waitFor } from '@flotilla/testkit';
import type { AgentHandle } from './agent.js';
import type { ReleaseSpec } from './test-support/control-plane.js';
import {
  buildImage,
  cleanup,
  deviceKeyOf,
  docker,
  exec,
  harness,
  ourContainers,
  reportedApp,
  reportedDone,
  serviceOf,
  type Harness,
  startHarnessAgent,
} from './test-support/fixtures.js';

describe('agent against the real control plane and the real engine', () => {
  let h: Harness;
  let agent: AgentHandle;
  let uuid: string;
  let hostPort: number;
  /** The fleet's id and uuid: the app's in target state. */
  let appId: number;
  let appUuid: string;
  const nonce = Math.random().toString(16).slice(2, 8);
  const imgA = `flotilla-agent-it/main-a:${nonce}`;
  const imgB = `flotilla-agent-it/main-b:${nonce}`;
  /** Commits of the releases made so far, by the names the steps use. */
  const commits: Record<string, string> = {};
  const running = async (): Promise<Map<string, string>> => {
    const list = await ourContainers(h.namespace);
    return new Map(list.filter((c) => c.State === 'running').map((c) => [serviceOf(c), c.Id]));
  };
  const converged = (commit: string) => (): boolean => reportedDone(h, uuid, commit);
  const swapped: ReleaseSpec = {
    volumes: ['data'],
    services: { web: { image: imgB }, db: { image: imgA, compose: { volumes: ['data:/data'] } } },
  };

  before(async () => {
    h = await harness({ keepMe: 'untouched' });
    appId = h.cp.fleet.id;
    appUuid = h.cp.fleet.uuid;
    hostPort = await freePort();
    await Promise.all([buildImage(imgA, 'a'), buildImage(imgB, 'b')]);
    agent = await startHarnessAgent(h);
    uuid = agent.state().uuid;
  });

  after(async () => {
    await agent?.stop();
    await cleanup(h.namespace, [imgA, imgB]);
    await h.remove();
  });

  it('registers and writes identity back to config.json, keeping unknown keys', async () => {
    await waitFor('registration', () => h.cp.registered(uuid));
    const written = await waitFor('deviceId in config.json', async () => {
      const raw = JSON.parse(await readFile(h.configPath, 'utf8')) as Record<string, unknown>;
      return raw.deviceId !== undefined ? raw : undefined;
    });
    const config = configJsonSchema.parse(written);
    assert.equal(config.uuid, uuid);
    assert.equal(config.deviceId, (await h.cp.device(uuid)).id);
    // The key it wrote is the one the server knows: the server answers the device's own requests with it.
    const ownState = await fetch(`${h.cp.server.url}/device/v3/${uuid}/state`, {
      headers: { authorization: `Bearer ${config.deviceApiKey}` },
    });
    assert.equal(ownState.status, 200);
    assert.equal(written.keepMe, 'untouched');
  });

  it('installs a multi-service app: network, volume, depends_on, env, ports; reports done', async () => {
    commits.c1 = await h.cp.release({
      volumes: ['data'],
      networks: ['back'],
      services: {
        web: {
          image: imgA,
          environment: { GREETING: 'hello' },
          compose: { depends_on: ['db'], ports: [`127.0.0.1:${hostPort}:8080`], networks: ['default', 'back'] },
        },
        db: {
          image: imgB,
          labels: { 'com.example.role': 'db' },
          compose: { volumes: ['data:/data'], healthcheck: { test: 'true', interval: '5s' } },
        },
      },
    });
    agent.triggerUpdate();
    await waitFor('release c1 reported done', converged(commits.c1), { timeoutMs: 60_000 });
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
    assert.equal(db.Config.Labels[LABELS.releaseCommit], commits.c1);
    assert.ok(db.Config.Healthcheck?.Test?.includes('true'));
    assert.ok(db.Mounts.some((m) => m.Name === `${h.namespace}${appId}_data` && m.Destination === '/data'));
    assert.ok(new Date(web.State.StartedAt) >= new Date(db.State.StartedAt), 'db (dependency) started first');
    const report = h.cp.tap.state.get(uuid);
    assert.equal(report?.apps?.[appUuid]?.releases[commits.c1]?.services.web?.status, 'Running');
    assert.equal(typeof report?.memory_total, 'number');
    // apiPort 0 disables the local API: no port is reported (it said 48484, where nothing listened).
    assert.equal(report?.api_port, null);
    assert.equal(agent.state().apiPort, undefined);
    assert.equal(report?.supervisor_version, '0.1.0');
    // And the server took it in: what its user API says about the device.
    const device = await h.cp.device(uuid);
    assert.equal(device.runningRelease, commits.c1);
    assert.equal(device.services.web?.status, 'Running');
    assert.equal(device.agentVersion, '0.1.0');
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
    commits.c1env = await h.cp.release({
      volumes: ['data'],
      services: {
        web: {
          image: imgA,
          environment: { GREETING: 'changed' },
          compose: { depends_on: ['db'], ports: [`127.0.0.1:${hostPort}:8080`] },
        },
        db: {
          image: imgB,
          labels: { 'com.example.role': 'db' },
          compose: { volumes: ['data:/data'], healthcheck: { test: 'true', interval: '5s' } },
        },
      },
    });
    agent.triggerUpdate();
    await waitFor(
      'web recreated',
      async () => {
        const now = await running();
        return now.get('web') !== undefined && now.get('web') !== before.get('web');
      },
      { timeoutMs: 30_000 },
    );
    await waitFor('release reported done', converged(commits.c1env), { timeoutMs: 30_000 });
    const after = await running();
    assert.equal(after.get('db'), before.get('db'), 'db untouched');
    assert.ok(
      (await docker.getContainer(after.get('web') as string).inspect()).Config.Env.includes('GREETING=changed'),
    );
    assert.equal((await ourContainers(h.namespace)).length, 2, 'old web container removed');
  });

  it('a new release with swapped images replaces the containers and keeps the named volume', async () => {
    commits.c2 = await h.cp.release(swapped);
    agent.triggerUpdate();
    await waitFor('release c2 reported done', converged(commits.c2), { timeoutMs: 60_000 });
    const now = await running();
    assert.equal((await exec(now.get('db') as string, 'cat /release /data/file')).trim(), 'a\nprecious');
    assert.equal((await ourContainers(h.namespace)).length, 2);
  });

  it('keeps apps running while the control plane is unreachable, and reports again when it is back', async () => {
    const before = await running();
    await h.cp.tap.down();
    const passes = agent.state().passes;
    agent.triggerUpdate();
    await waitFor('two passes while offline', () => agent.state().passes >= passes + 2, { timeoutMs: 10_000 });
    assert.deepEqual(await running(), before);
    const reportsBefore = h.cp.tap.reports.length;
    // A change while it was away: the agent must pick it up once back.
    commits.c3 = await h.cp.release(swapped);
    await h.cp.tap.up();
    agent.triggerUpdate();
    await waitFor('release c3 reported done', converged(commits.c3), { timeoutMs: 60_000 });
    assert.ok(h.cp.tap.reports.length > reportsBefore);
    // Same images and config, new release: metadata only, no restart.
    assert.deepEqual(await running(), before);
  });

  it('an invalid target state is rejected and reported; the running release stays', async () => {
    const before = await running();
    // The server validates every release, so it never serves an invalid target: the tap serves one in its place,
    // the server's own target with one more release whose port is not a port.
    const key = await deviceKeyOf(h);
    const served = (await (
      await fetch(`${h.cp.server.url}/device/v3/${uuid}/state`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as Record<string, { apps: Record<string, { releases: Record<string, unknown> }> }>;
    const app = served[uuid]?.apps[appUuid];
    assert.ok(app);
    app.releases = {
      cbad: {
        id: 9_999,
        services: {
          web: {
            id: 1,
            image_id: 1,
            image: imgB,
            running: true,
            environment: {},
            labels: {},
            composition: { ports: ['not a port'] },
          },
        },
        volumes: {},
        networks: {},
      },
    };
    h.cp.tap.serveTarget(uuid, served);
    agent.triggerUpdate();
    await waitFor('rejected reported', () => reportedApp(h, uuid)?.releases.cbad?.update_status === 'rejected', {
      timeoutMs: 15_000,
    });
    assert.deepEqual(await running(), before);
    assert.equal(agent.state().targetCommits[appUuid], commits.c3, 'last good target kept');
    h.cp.tap.serveTarget(uuid, undefined);
    agent.triggerUpdate();
    await waitFor('rejection cleared from the report', () => reportedApp(h, uuid)?.releases.cbad === undefined, {
      timeoutMs: 15_000,
    });
  });

  it('restarted while the control plane is down: applies the persisted target (repairs drift)', async () => {
    await agent.stop();
    await h.cp.tap.down();
    const before = await running();
    // Drift while the agent is down: someone removes a service container.
    await docker.getContainer(before.get('web') as string).remove({ force: true });
    agent = await startHarnessAgent(h);
    await waitFor('web recreated offline', async () => (await running()).has('web'), { timeoutMs: 30_000 });
    assert.equal((await running()).get('db'), before.get('db'), 'db untouched');
    assert.equal(agent.state().targetCommits[appUuid], commits.c3);
    await h.cp.tap.up();
  });

  it('removes the app, its network and volume when it leaves the target', async () => {
    // Moved to another fleet (with no release yet), the device's target no longer has this fleet's app.
    const other = `${h.cp.fleet.slug}-other`;
    await h.cp.api('POST', '/api/v1/fleets', { name: other, slug: other });
    await h.cp.api('PATCH', `/api/v1/devices/${uuid}`, { fleet: other });
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
