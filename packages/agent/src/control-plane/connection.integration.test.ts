import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle } from '../agent.js';
import { DryRunHostPower } from '../host/host-power.js';
import {
  buildImage,
  cleanup,
  deviceKeyOf,
  docker,
  exec,
  harness,
  ourContainers,
  type Harness,
  quiet,
} from '../test-support/fixtures.js';

describe('actions from the control plane over the device connection', () => {
  let h: Harness;
  let agent: AgentHandle;
  let uuid: string;
  const power = new DryRunHostPower(quiet);
  const img = `flotilla-agent-it/remote:${Math.random().toString(16).slice(2, 8)}`;
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
    await waitFor('registration', () => h.cp.registered(uuid));
    await h.cp.release({ services: { main: { image: img } } });
    agent.triggerUpdate();
    await waitFor('main running', async () => (await ourContainers(h.namespace)).some((c) => c.State === 'running'), {
      timeoutMs: 60_000,
    });
    await waitFor('device connected', () => h.cp.tap.connected(uuid) && agent.state().remoteActionsConnected, {
      timeoutMs: 20_000,
    });
  });

  it('reports the port its local device API listens on', async () => {
    const port = agent.state().apiPort;
    assert.ok(port && port > 0);
    await waitFor('api_port reported', () => h.cp.tap.state.get(uuid)?.api_port === port, { timeoutMs: 10_000 });
  });

  after(async () => {
    await agent?.stop();
    await cleanup(h.namespace, [img]);
    await h.remove();
  });

  it('restart (default app), stop-service (stays stopped), start-service, identify', async () => {
    const before = await main();
    const { status, error } = await h.cp.sendAction(uuid, { action: 'restart' });
    assert.deepEqual({ status, error }, { status: 'done', error: null });
    const restarted = await main();
    assert.equal(restarted.id, before.id);
    assert.ok(restarted.startedAt > before.startedAt);

    assert.equal((await h.cp.sendAction(uuid, { action: 'stop-service', service: 'main' })).status, 'done');
    const passes = agent.state().passes;
    agent.triggerUpdate();
    await waitFor('two passes', () => agent.state().passes >= passes + 2);
    assert.equal((await main()).state, 'exited');
    assert.equal((await h.cp.sendAction(uuid, { action: 'start-service', service: 'main' })).status, 'done');
    assert.equal((await main()).state, 'running');

    assert.equal((await h.cp.sendAction(uuid, { action: 'identify' })).status, 'done');
    assert.deepEqual(power.requests, ['identify']);
  });

  it('an update lock fails the action with UPDATE_LOCKED unless forced', async () => {
    const c = await main();
    await exec(c.id, 'touch /tmp/balena/updates.lock');
    try {
      const refused = await h.cp.sendAction(uuid, { action: 'restart' });
      assert.equal(refused.status, 'failed');
      assert.equal(refused.error?.code, 'UPDATE_LOCKED');
      assert.equal((await main()).startedAt, c.startedAt);
      assert.equal((await h.cp.sendAction(uuid, { action: 'restart', force: true })).status, 'done');
      assert.ok((await main()).startedAt > c.startedAt);
    } finally {
      await exec(c.id, 'rm -f /tmp/balena/updates.lock');
    }
  });

  it('each connect tells the server the ETag of the target the agent holds', async () => {
    const tap = h.cp.tap;
    const key = await deviceKeyOf(h);
    /** The ETag the server serves the device's target state with now (asked directly, not through the tap). */
    const etagOf = async (): Promise<string | null> => {
      const response = await fetch(`${h.cp.server.url}/device/v3/${uuid}/state`, {
        headers: { authorization: `Bearer ${key}` },
      });
      await response.arrayBuffer();
      return response.headers.get('etag');
    };
    const reconnect = async (): Promise<string | null | undefined> => {
      const connects = tap.connectEtags.length;
      tap.disconnect(uuid);
      await waitFor('reconnected', () => tap.connectEtags.length > connects && tap.connected(uuid), {
        timeoutMs: 20_000,
      });
      return tap.connectEtags.at(-1);
    };
    assert.equal(await reconnect(), await etagOf());
    const held = await etagOf();
    await h.cp.api('PATCH', `/api/v1/devices/${uuid}`, { name: 'renamed' });
    const changed = await etagOf();
    assert.notEqual(changed, held);
    await waitFor('the new target fetched', () => tap.targetEtags.at(-1) === changed, { timeoutMs: 10_000 });
    const passes = agent.state().passes;
    await waitFor('a pass over it', () => agent.state().passes > passes, { timeoutMs: 10_000 });
    assert.equal(await reconnect(), changed, 'the target fetched since, not the one held before');
  });
});
