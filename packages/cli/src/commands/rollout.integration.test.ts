import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Release, Rollout } from '@flotilla/protocol';
import { startServer, type RunningServer } from '@flotilla/server';
import { SimulatedDevice, apiCall } from '@flotilla/server/testing';
import { BUSYBOX_IMAGE, ensureBusyboxImage, run, tempDir, waitFor } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

/**
 * `flotilla deploy --rollout` and `flotilla rollout status|pause|resume|abort` against a real server, with devices
 * speaking the device API over HTTP (no engine: the server's simulated devices).
 */

let server: RunningServer;
let dir: { path: string; remove: () => Promise<void> };
let config: string;
let project: string;
const devices: SimulatedDevice[] = [];
const slug = `rollout-cli-${process.pid}`;

before(async () => {
  await ensureBusyboxImage();
  dir = await tempDir('flotilla-cli-rollout-');
  config = join(dir.path, 'config');
  server = await startServer({ dataDir: join(dir.path, 'data'), host: '127.0.0.1', port: 0, rolloutIntervalMs: 100 });
  const key = server.admin!.apiKey;
  assert.equal((await flotilla(config, ['login', '--url', server.url, '--api-key', key])).code, 0);
  await flotillaJson(config, ['fleet', 'create', 'Rollout CLI', '--slug', slug]);
  const fleet = await apiCall(server.url, 'GET', `/api/v1/fleets/${slug}`, key);
  const pk = await apiCall(server.url, 'POST', `/api/v1/fleets/${slug}/provisioning-keys`, key, {});
  for (let i = 0; i < 3; i++) devices.push(await SimulatedDevice.register(server.url, fleet.data.id, pk.data.key));
  project = join(dir.path, 'project');
  await mkdir(project, { recursive: true });
  await writeFile(join(project, 'docker-compose.yml'), `services:\n  main:\n    image: ${BUSYBOX_IMAGE}\n`);
});

after(async () => {
  for (const d of devices) await d.stop();
  await server?.close();
  const host = server ? new URL(server.url).host : 'none';
  const images = (await run('docker', ['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout
    .split('\n')
    .filter((l) => l.startsWith(`${host}/${slug}/`));
  if (images.length > 0) await run('docker', ['rmi', ...images]).catch(() => undefined);
  await dir?.remove();
});

const deployed = async (args: string[]) => {
  const result = await flotilla(config, ['deploy', slug, project, '--json', ...args]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as { release: { commit: string }; rollout?: Rollout };
};

test('deploy --rollout stages the release batch by batch; rollout status, pause, resume and abort', async () => {
  let r = await flotilla(config, ['rollout', 'status', slug]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: the fleet has no rollout (ROLLOUT_NOT_FOUND)\n');
  // A bad plan is refused before anything is built or created.
  r = await flotilla(config, ['deploy', slug, project, '--rollout', '50%,20%']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: invalid rollout .*batch percentages must increase.* \(VALIDATION_FAILED\)\n$/);
  r = await flotilla(config, ['deploy', slug, project, '--soak', '5']);
  assert.match(r.stderr, /need --rollout .*\(VALIDATION_FAILED\)\n$/);
  assert.deepEqual(await flotillaJson<Release[]>(config, ['release', 'list', slug]), []);

  const first = await deployed([]);
  assert.equal(first.rollout, undefined);
  for (const d of devices) d.start();
  await waitFor('every device to run the first release', () =>
    devices.every((d) => d.running === first.release.commit),
  );

  const second = await deployed(['--rollout', '34%,100%', '--soak', '0']);
  assert.deepEqual(
    second.rollout?.batches.map((b) => [b.label, b.devices]),
    [
      ['34%', 2],
      ['100%', 1],
    ],
  );
  await waitFor('the rollout to complete', async () => {
    const status = await flotillaJson<Rollout>(config, ['rollout', 'status', slug]);
    return status.status === 'completed';
  });
  await waitFor('every device to run the second release', () =>
    devices.every((d) => d.running === second.release.commit),
  );
  r = await flotilla(config, ['rollout', 'status', slug]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^status: +completed$/m);
  assert.match(r.stdout, /^BATCH +DEVICES +OPENED +SUCCEEDED/m);
  assert.match(r.stdout, /^1 \(34%\) +2 +\S+ +2 /m);

  // A plan stored on the fleet under a name, deployed by its name.
  r = await flotilla(config, ['rollout', 'policy', 'set', slug, 'careful', '--rollout', '34%,100%', '--soak', '600']);
  assert.equal(r.code, 0, r.stderr);
  const policies = await flotillaJson<Array<{ name: string; plan: { batches: number[]; soakSeconds: number } }>>(
    config,
    ['rollout', 'policy', 'list', slug],
  );
  assert.deepEqual(
    policies.map((p) => [p.name, p.plan.batches, p.plan.soakSeconds]),
    [['careful', [34, 100], 600]],
  );
  r = await flotilla(config, ['deploy', slug, project, '--rollout-policy', 'nope']);
  assert.equal(r.stderr, 'error: the fleet has no rollout policy "nope" (ROLLOUT_POLICY_NOT_FOUND)\n');
  r = await flotilla(config, ['deploy', slug, project, '--rollout-policy', 'careful', '--soak', '1']);
  assert.match(r.stderr, /takes no other rollout option \(VALIDATION_FAILED\)\n$/);
  assert.equal((await flotillaJson<Release[]>(config, ['release', 'list', slug])).length, 2);

  // A long soak holds the third release in its first batch while it is paused, resumed and aborted.
  const third = await deployed(['--rollout-policy', 'careful']);
  assert.equal(third.rollout?.plan.soakSeconds, 600);
  await waitFor('the first batch to open', async () => {
    const status = await flotillaJson<Rollout>(config, ['rollout', 'status', slug]);
    return !status.waiting && status.batches[0]?.opened;
  });
  r = await flotilla(config, ['rollout', 'pause', slug]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: paused\n$/);
  r = await flotilla(config, ['rollout', 'pause', slug]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\(ROLLOUT_STATE\)\n$/);
  assert.equal((await flotillaJson<Rollout>(config, ['rollout', 'resume', slug])).status, 'running');
  const status = await flotillaJson<Rollout>(config, ['rollout', 'status', slug]);
  const canaries = devices.filter((d) => status.devices.find((x) => x.uuid === d.uuid)?.batch === 0);
  await waitFor('the first batch to run the third release', () =>
    canaries.every((d) => d.running === third.release.commit),
  );
  const aborted = await flotillaJson<Rollout>(config, ['rollout', 'abort', slug]);
  assert.equal(aborted.status, 'aborted');
  assert.deepEqual(
    aborted.events.map((e) => e.kind),
    ['created', 'batch-opened', 'paused', 'resumed', 'aborted'],
  );
  await waitFor('every device back on the second release', () =>
    devices.every((d) => d.running === second.release.commit),
  );
  assert.equal((await flotilla(config, ['rollout', 'policy', 'rm', slug, 'careful'])).code, 0);
  assert.deepEqual(await flotillaJson(config, ['rollout', 'policy', 'list', slug]), []);
  r = await flotilla(config, ['rollout', 'policy', 'rm', slug, 'careful']);
  assert.match(r.stderr, /\(ROLLOUT_POLICY_NOT_FOUND\)\n$/);
});
