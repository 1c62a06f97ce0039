import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Rollout } from '@flotilla/protocol';
import { tempDir, waitFor } from '@flotilla/testkit';
import { type AgentHandle, startAgent } from '../agent.js';
import { ControlPlane } from '../test-support/control-plane.js';
import { cleanup, ourContainers, quiet, serviceOf, uniqueNamespace } from '../test-support/fixtures.js';
import { RUNS_WELL, buildScriptImage } from '../test-support/rollback.js';

/**
 * Staged rollouts with real agents: ten devices, each an agent with its own config.json, data folder and namespace
 * on the one engine, against the real server. A good release goes through every batch (with the server restarted
 * mid-rollout and one device offline); a release failing its healthcheck stops after its first batch, whose devices
 * roll themselves back; an abort sends the devices of the opened batch back to what the fleet ran.
 */

const DEVICES = 10;
/** The agents' own soak: a failure ends it as soon as it is seen, so it is long only for a loaded machine. */
const AGENT_SOAK_SECONDS = 20;

interface Device {
  index: number;
  uuid: string;
  namespace: string;
  configPath: string;
  dataDir: string;
  agent: AgentHandle | undefined;
}

describe('staged rollouts with ten real agents', { concurrency: false }, () => {
  let cp: ControlPlane;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const devices: Device[] = [];
  const n = Math.random().toString(16).slice(2, 8);
  const image = (name: string) => `flotilla-agent-it/staged-${name}:${n}`;
  const images = ['r1', 'r2', 'r3', 'r4'].map(image);
  const commits = { r1: '', r2: '', r3: '', r4: '' };

  const start = async (d: Device): Promise<void> => {
    d.agent = await startAgent({
      configPath: d.configPath,
      dataDir: d.dataDir,
      namespace: d.namespace,
      pollIntervalMs: 300,
      reportIntervalMs: 100,
      logger: quiet,
      apiPort: 0,
    });
    d.uuid = d.agent.state().uuid;
  };
  const stop = async (d: Device): Promise<void> => {
    await d.agent?.stop();
    d.agent = undefined;
  };
  /** What the device last reported running for the fleet's app, once done. */
  const running = (d: Device): string | undefined => {
    const app = cp.tap.state.get(d.uuid)?.apps?.[cp.fleet.uuid];
    const commit = app?.release_uuid ?? undefined;
    return commit && app?.releases[commit]?.update_status === 'done' ? commit : undefined;
  };
  /** The release whose image the device's container runs now, read off the engine. */
  const onEngine = async (d: Device): Promise<string | undefined> => {
    const main = (await ourContainers(d.namespace)).filter((c) => serviceOf(c) === 'main');
    const name = images.find((ref) => main.length === 1 && main[0]?.Image === ref);
    return name ? `r${images.indexOf(name) + 1}` : undefined;
  };
  const all =
    (commit: string, among: Device[] = devices) =>
    () =>
      among.every((d) => running(d) === commit);
  const rollout = async (): Promise<Rollout> => cp.api('GET', `/api/v1/fleets/${cp.fleet.slug}/rollout`);
  const inBatch = (r: Rollout, batch: number) =>
    devices.filter((d) => r.devices.find((x) => x.uuid === d.uuid)?.batch === batch);
  /** `flotilla deploy --rollout`'s calls: a release being deployed, its rollout, then the release marked done. */
  const deployStaged = async (
    name: keyof typeof commits,
    plan: Record<string, unknown>,
    compose: Record<string, unknown> = {},
  ) => {
    const composition = { services: { main: { image: image(name), labels: {}, ...compose } }, volumes: {} };
    const release = await cp.api('POST', `/api/v1/fleets/${cp.fleet.slug}/releases`, {
      composition,
      images: { main: image(name) },
      status: 'running',
    });
    await cp.api('POST', `/api/v1/fleets/${cp.fleet.slug}/rollouts`, { release: release.id, ...plan });
    await cp.api('PATCH', `/api/v1/releases/${release.id}`, { status: 'success' });
    commits[name] = release.commit as string;
    return release.commit as string;
  };

  before(async () => {
    cp = await ControlPlane.start();
    dir = await tempDir('flotilla-staged-');
    await Promise.all([
      buildScriptImage(image('r1'), 'r1', RUNS_WELL),
      buildScriptImage(image('r2'), 'r2', RUNS_WELL),
      buildScriptImage(image('r3'), 'r3', `echo 'listening (not really)'; ${RUNS_WELL}`),
      buildScriptImage(image('r4'), 'r4', RUNS_WELL),
    ]);
    await cp.api('POST', `/api/v1/fleets/${cp.fleet.slug}/config`, {
      name: 'FLOTILLA_ROLLBACK_SOAK_SECONDS',
      value: String(AGENT_SOAK_SECONDS),
    });
    for (let index = 0; index < DEVICES; index++) {
      const d: Device = {
        index,
        uuid: '',
        namespace: uniqueNamespace(),
        configPath: join(dir.path, `config-${index}.json`),
        dataDir: join(dir.path, `data-${index}`),
        agent: undefined,
      };
      await cp.writeConfig(d.configPath);
      devices.push(d);
    }
    await Promise.all(devices.map(start));
    commits.r1 = await cp.release({ services: { main: { image: image('r1') } } });
    await waitFor('every device to run release 1', all(commits.r1), { timeoutMs: 120_000, intervalMs: 200 });
  });

  after(async () => {
    await Promise.all(devices.map(stop));
    for (const d of devices) await cleanup(d.namespace);
    if (devices[0]) await cleanup(devices[0].namespace, images);
    await cp?.close();
    await dir?.remove();
  });

  it('a good release goes through every batch, across a server restart and past an offline device', async () => {
    const offline = devices[DEVICES - 1] as Device;
    await stop(offline);
    const r2 = await deployStaged('r2', { batches: [20, 60, 100], soakSeconds: 2, offlineTimeoutSeconds: 3 });
    const first = inBatch(await rollout(), 0).filter((d) => d !== offline);
    await waitFor('batch 1 to run release 2', all(r2, first), { timeoutMs: 60_000, intervalMs: 200 });
    const later = inBatch(await rollout(), 2).filter((d) => d !== offline);
    assert.ok(
      later.every((d) => running(d) === commits.r1),
      'the last batch has not been given release 2 yet',
    );
    await cp.restart();
    const done = await waitFor(
      'the rollout to complete after the restart',
      async () => {
        const r = await rollout();
        return r.status === 'completed' ? r : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    assert.deepEqual(
      done.events.filter((e) => e.kind === 'batch-opened').map((e) => e.batch),
      [0, 1, 2],
      'each batch opened once, the restart notwithstanding',
    );
    assert.equal(done.devices.find((x) => x.uuid === offline.uuid)?.state, 'offline');
    const online = devices.filter((d) => d !== offline);
    await waitFor('every online device to run release 2', all(r2, online), { timeoutMs: 60_000, intervalMs: 200 });
    await start(offline);
    await waitFor('the device back online to run release 2', all(r2, [offline]), { timeoutMs: 60_000 });
  });

  it('a release failing its healthcheck stops after its first batch, whose devices roll themselves back', async () => {
    const r3 = await deployStaged(
      'r3',
      { batches: [20, 100], soakSeconds: 2 },
      { healthcheck: { test: ['CMD', 'false'], interval: '500ms', timeout: '1s', retries: 2 } },
    );
    const paused = await waitFor(
      'the rollout to pause',
      async () => {
        const r = await rollout();
        return r.status === 'paused' ? r : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    assert.match(paused.reason ?? '', /^batch 1: [12] of 2 device\(s\) failed/);
    const [first, rest] = [inBatch(paused, 0), inBatch(paused, 1)];
    assert.equal(first.length, 2);
    await waitFor(
      'both devices of the first batch to roll back to release 2',
      () =>
        first.every((d) => {
          const rollback = cp.tap.state.get(d.uuid)?.rollback;
          return rollback?.from_commit === r3 && rollback.to_commit === commits.r2 && running(d) === commits.r2;
        }),
      { timeoutMs: 90_000, intervalMs: 200 },
    ).catch(async (error: Error) => {
      const seen = await Promise.all(
        first.map(async (d) => ({ commits, report: cp.tap.state.get(d.uuid), engine: await onEngine(d) })),
      );
      throw new Error(`${error.message}; the first batch: ${JSON.stringify(seen)}`);
    });
    const final = await waitFor(
      'both failures counted',
      async () => {
        const r = await rollout();
        return r.batches[0]?.failed === 2 ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500 },
    );
    assert.equal(final.currentBatch, 0, 'the second batch never opened');
    for (const d of rest) {
      assert.equal(running(d), commits.r2);
      assert.equal(await onEngine(d), 'r2', 'release 3 never reached a device outside the first batch');
    }
  });

  it('abort sends the devices of the opened batch back to what the fleet ran', async () => {
    const r4 = await deployStaged('r4', { batches: [20, 100], soakSeconds: 600 });
    const started = await rollout();
    assert.equal(started.previousRelease?.commit, commits.r2, 'staged from release 2, not the paused release 3');
    const first = inBatch(started, 0);
    await waitFor('batch 1 to run release 4', all(r4, first), { timeoutMs: 60_000, intervalMs: 200 });
    await cp.api('POST', `/api/v1/fleets/${cp.fleet.slug}/rollout/abort`);
    await waitFor('every device to run release 2', all(commits.r2), { timeoutMs: 90_000, intervalMs: 200 });
    for (const d of devices) assert.equal(await onEngine(d), 'r2');
    assert.equal((await rollout()).status, 'aborted');
  });
});
