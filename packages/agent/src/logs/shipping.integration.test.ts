import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startAgent, type AgentHandle, type AgentOptions } from '../agent.js';
import { run, waitFor } from '@flotilla/testkit';
import { buildTalkingImage, cleanup, harness, ourContainers, type Harness, quiet } from '../test-support/fixtures.js';

interface Line {
  message: string;
  isSystem: boolean;
  isStdErr: boolean;
  serviceName: string | null;
}

/** The device's log lines the server stored, oldest first (as its user API gives them). */
async function serverLogs(h: Harness, uuid: string): Promise<Line[]> {
  return (await h.cp.api('GET', `/api/v1/devices/${uuid}/logs?tail=5000`)).items as Line[];
}

/** Tick numbers of `service` as the server stored them (duplicates kept, arrival order). */
async function ticks(h: Harness, uuid: string, service: string): Promise<number[]> {
  return (await serverLogs(h, uuid))
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
  const img = `flotilla-agent-it/talker:${Math.random().toString(16).slice(2, 8)}`;

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
    await waitFor('registration', () => h.cp.registered(uuid));
    await h.cp.release({ services: { talker: { image: img } } });
    agent.triggerUpdate();
    await waitFor('10 ticks shipped', async () => (await ticks(h, uuid, 'talker')).length >= 10, { timeoutMs: 60_000 });
    assertInOrderWithoutGaps(await ticks(h, uuid, 'talker'));
    const logs = await serverLogs(h, uuid);
    assert.ok(
      logs.some((l) => l.isSystem && l.message.startsWith("Installing service 'talker ")),
      'install announced',
    );
    assert.ok(
      logs.some((l) => l.isSystem && l.message === "Service started 'talker'"),
      'start announced',
    );
  });

  it('lines written while the server is down are delivered after an agent restart', async () => {
    const uuid = agent.state().uuid;
    await h.cp.tap.down();
    const before = Math.max(...(await ticks(h, uuid, 'talker')));
    // Ticks keep coming (5/s) and are queued on disk while the server is unreachable: ten of them, by the
    // container's own output, before the agent stops.
    const [talker] = await ourContainers(h.namespace);
    assert.ok(talker);
    await waitFor(
      'ten ticks written while the server is unreachable',
      async () => {
        const { stdout } = await run('docker', ['logs', '--tail', '1', talker.Id]);
        return Number(/tick (\d+)/.exec(stdout)?.[1] ?? 0) >= before + 10;
      },
      { timeoutMs: 30_000 },
    );
    await agent.stop();
    await h.cp.tap.up();
    agent = await startAgent(options);
    await waitFor(
      'ticks from after the restart',
      async () => Math.max(...(await ticks(h, uuid, 'talker'))) >= before + 25,
      { timeoutMs: 60_000 },
    );
    assertInOrderWithoutGaps(await ticks(h, uuid, 'talker'));
  });
});
