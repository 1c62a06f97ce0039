import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { freePort, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import { DryRunHostPower } from '../host/host-power.js';
import {
  buildImage,
  cleanup,
  docker,
  exec,
  harness,
  ourContainers,
  target,
  uniqueAppId,
  type Harness,
} from '../test-support/fixtures.js';

const quiet = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

describe('actions from the control plane over the device connection', () => {
  let h: Harness;
  let agent: AgentHandle;
  let uuid: string;
  const power = new DryRunHostPower(quiet);
  const appId = uniqueAppId();
  const img = `flotilla-agent-it/remote:${appId}`;
  const main = async (): Promise<{ id: string; state: string; startedAt: number }> => {
    const [c] = await ourContainers(h.namespace);
    assert.ok(c, 'the service container exists');
    return {
      id: c.Id,
      state: c.State,
      startedAt: Date.parse((await docker.getContainer(c.Id).inspect()).State.StartedAt),
    };
  };

  before(async () => {
    h = await harness();
    await buildImage(img, 'remote');
    agent = await startAgent({
      configPath: h.configPath,
      dataDir: h.dataDir,
      namespace: h.namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      apiPort: await freePort(),
      apiAddress: '127.0.0.1',
      hostPower: power,
      logger: quiet,
    });
    uuid = agent.state().uuid;
    await waitFor('registration', () => h.cp.devices.has(uuid));
    h.cp.setTarget(
      uuid,
      target({ appId, appUuid: `app${appId}`, commit: 'c1', releaseId: 1, services: { main: { image: img } } }),
    );
    agent.triggerUpdate();
    await waitFor('main running', async () => (await ourContainers(h.namespace)).some((c) => c.State === 'running'), {
      timeoutMs: 60_000,
    });
    await waitFor('device connected', () => h.cp.connected(uuid) && agent.state().remoteActionsConnected, {
      timeoutMs: 20_000,
    });
  });

  it('reports the port its local device API listens on', async () => {
    const port = agent.state().apiPort;
    assert.ok(port && port > 0);
    await waitFor('api_port reported', () => h.cp.state.get(uuid)?.api_port === port, { timeoutMs: 10_000 });
  });

  after(async () => {
    await agent?.stop();
    await cleanup(h.namespace, [img]);
    await h.remove();
  });

  it('restart (default app), stop-service (stays stopped), start-service, identify', async () => {
    const before = await main();
    assert.deepEqual(await h.cp.sendAction(uuid, { action: 'restart' }), { type: 'action-result', id: 1, ok: true });
    const restarted = await main();
    assert.equal(restarted.id, before.id);
    assert.ok(restarted.startedAt > before.startedAt);

    assert.equal((await h.cp.sendAction(uuid, { action: 'stop-service', service: 'main' })).ok, true);
    const passes = agent.state().passes;
    agent.triggerUpdate();
    await waitFor('two passes', () => agent.state().passes >= passes + 2);
    assert.equal((await main()).state, 'exited');
    assert.equal((await h.cp.sendAction(uuid, { action: 'start-service', service: 'main' })).ok, true);
    assert.equal((await main()).state, 'running');

    assert.equal((await h.cp.sendAction(uuid, { action: 'identify' })).ok, true);
    assert.deepEqual(power.requests, ['identify']);
  });

  it('an update lock fails the action with UPDATE_LOCKED unless forced', async () => {
    const c = await main();
    await exec(c.id, 'touch /tmp/balena/updates.lock');
    try {
      const refused = await h.cp.sendAction(uuid, { action: 'restart' });
      assert.equal(refused.ok, false);
      assert.equal(refused.error?.code, 'UPDATE_LOCKED');
      assert.equal((await main()).startedAt, c.startedAt);
      assert.equal((await h.cp.sendAction(uuid, { action: 'restart', force: true })).ok, true);
      assert.ok((await main()).startedAt > c.startedAt);
    } finally {
      await exec(c.id, 'rm -f /tmp/balena/updates.lock');
    }
  });

  it('each connect tells the server the ETag of the target the agent holds', async () => {
    const reconnect = async (): Promise<string | null | undefined> => {
      const connects = h.cp.connectEtags.length;
      h.cp.disconnect(uuid);
      await waitFor('reconnected', () => h.cp.connectEtags.length > connects && h.cp.connected(uuid), {
        timeoutMs: 20_000,
      });
      return h.cp.connectEtags.at(-1);
    };
    assert.equal(await reconnect(), h.cp.etagOf(uuid));
    const held = h.cp.etagOf(uuid);
    const current = h.cp.targets.get(uuid)!;
    h.cp.setTarget(uuid, { ...current, name: 'renamed' });
    assert.notEqual(h.cp.etagOf(uuid), held);
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // several polls (every 300 ms)
    assert.equal(await reconnect(), h.cp.etagOf(uuid), 'the target fetched since, not the one held before');
  });
});
