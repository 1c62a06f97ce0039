import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { waitFor } from '@flotilla/testkit';
import { startAgent, type AgentHandle, type AgentOptions } from '../agent.js';
import { buildTalkingImage, cleanup, harness, target, uniqueAppId, type Harness } from '../test-support/fixtures.js';

const quiet = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

/** Tick numbers of `service` as the fake log-stream server received them (duplicates kept, arrival order). */
function ticks(h: Harness, service: string): number[] {
  return h.cp.logs
    .filter((l) => l.serviceName === service && !l.isStdErr && /^tick \d+$/.test(l.message))
    .map((l) => Number(l.message.slice(5)));
}

/** At-least-once, in order: first occurrences are exactly 1, 2, …, n (a resent batch may repeat lines later). */
function assertInOrderWithoutGaps(seen: number[]): void {
  const first: number[] = [];
  const set = new Set<number>();
  for (const n of seen) {
    if (set.has(n)) continue;
    set.add(n);
    first.push(n);
  }
  assert.deepEqual(
    first,
    first.map((_, i) => i + 1),
    `ticks out of order or missing: ${first.join(',')}`,
  );
}

describe('log shipping to the control plane (persistent logging)', () => {
  let h: Harness;
  let agent: AgentHandle;
  let options: AgentOptions;
  const appId = uniqueAppId();
  const appUuid = `app${appId}`;
  const img = `flotilla-agent-it/talker:${appId}`;

  before(async () => {
    h = await harness({ persistentLogging: true });
    await buildTalkingImage(img);
    options = {
      configPath: h.configPath,
      dataDir: h.dataDir,
      namespace: h.namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      apiPort: 0,
      logger: quiet,
    };
    agent = await startAgent(options);
  });

  after(async () => {
    await agent?.stop();
    await cleanup(h.namespace, [img]);
    await h.remove();
  });

  it("a container's lines reach the log-stream endpoint in order, with the agent's system lines", async () => {
    const uuid = agent.state().uuid;
    await waitFor('registration', () => h.cp.devices.has(uuid));
    h.cp.setTarget(uuid, target({ appId, appUuid, commit: 'c1', releaseId: 1, services: { talker: { image: img } } }));
    agent.triggerUpdate();
    await waitFor('10 ticks shipped', () => ticks(h, 'talker').length >= 10, { timeoutMs: 60_000 });
    assertInOrderWithoutGaps(ticks(h, 'talker'));
    const line = h.cp.logs.find((l) => l.serviceName === 'talker');
    assert.equal(line?.uuid, uuid);
    assert.equal(typeof line?.serviceId, 'number');
    assert.ok(
      h.cp.logs.some((l) => l.isSystem && l.message.startsWith("Installing service 'talker ")),
      'install announced',
    );
    assert.ok(
      h.cp.logs.some((l) => l.isSystem && l.message === "Service started 'talker'"),
      'start announced',
    );
  });

  it('lines written while the server is down are delivered after an agent restart', async () => {
    const port = h.cp.port;
    await h.cp.stop();
    const before = Math.max(...ticks(h, 'talker'));
    // Ticks keep coming (5/s) and are queued on disk while the server is down.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await agent.stop();
    await h.cp.start(port);
    agent = await startAgent(options);
    await waitFor('ticks from after the restart', () => Math.max(...ticks(h, 'talker')) >= before + 25, {
      timeoutMs: 60_000,
    });
    assertInOrderWithoutGaps(ticks(h, 'talker'));
  });
});
