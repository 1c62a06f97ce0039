import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type { ClearTargetOsAnswer, Device, OsRelease, OsRollout } from '@flotilla/protocol';
import { startServer, type RunningServer } from '@flotilla/server';
import { SimulatedDevice, apiCall } from '@flotilla/server/testing';
import { tempDir, testDatabases, waitFor } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

/**
 * `flotilla device|fleet os-update … --clear`, `flotilla os release rm` and `flotilla fleet os-update --rollout`
 * with `flotilla rollout status|pause|resume|abort --os`: the real CLI against a real server on each database, with
 * simulated A/B devices that report their OS updates as the agent does.
 */

const run = promisify(execFile);

for (const testDb of testDatabases()) {
  describe(`OS targets, releases and rollouts from the CLI (${testDb.label})`, () => {
    let server: RunningServer;
    let dir: { path: string; remove: () => Promise<void> };
    let drop: () => Promise<void>;
    let config: string;
    const devices: SimulatedDevice[] = [];
    const slug = `os-admin-${process.pid}`;
    const cli = (args: string[]) => flotilla(config, args);

    before(async () => {
      dir = await tempDir('flotilla-cli-os-admin-');
      const created = await testDb.create();
      drop = created.drop;
      config = join(dir.path, 'config');
      server = await startServer({
        dataDir: join(dir.path, 'data'),
        host: '127.0.0.1',
        port: 0,
        rolloutIntervalMs: 100,
        ...(created.url ? { databaseUrl: created.url } : {}),
      });
      const key = server.admin?.apiKey ?? '';
      assert.equal((await cli(['login', '--url', server.url, '--api-key', key])).code, 0);
      await flotillaJson(config, ['fleet', 'create', 'OS admin', '--slug', slug]);
      const fleet = await apiCall(server.url, 'GET', `/api/v1/fleets/${slug}`, key);
      const pk = await apiCall(server.url, 'POST', `/api/v1/fleets/${slug}/provisioning-keys`, key, {});
      for (let i = 0; i < 4; i++) devices.push(await SimulatedDevice.register(server.url, fleet.data.id, pk.data.key));
      for (const version of ['2.0.0', '3.0.0']) {
        const image = join(dir.path, `os-${version}.img`);
        await run('mkfs.ext4', ['-q', '-F', image, '2M']);
        await flotillaJson<OsRelease>(config, ['os', 'release', 'push', 'generic-amd64', version, image]);
      }
    });
    after(async () => {
      for (const d of devices) await d.stop();
      await server?.close();
      await drop?.();
      await dir?.remove();
    });

    const info = (d: SimulatedDevice) => flotillaJson<Device>(config, ['device', 'info', d.uuid]);

    test('device and fleet os-update --clear withdraw the OS target; a version and --clear together are refused', async () => {
      const [one] = devices;
      assert.ok(one);
      await flotillaJson(config, ['device', 'os-update', one.uuid, '2.0.0']);
      assert.equal((await info(one)).targetOs, '2.0.0');
      const cleared = await cli(['device', 'os-update', one.uuid.slice(0, 7), '--clear']);
      assert.equal(cleared.code, 0, cleared.stderr);
      assert.equal(
        cleared.stdout,
        `OS target cleared on 1 device(s): ${one.uuid.slice(0, 7)}; an OS they installed stays\n`,
      );
      assert.equal((await info(one)).targetOs, null);

      const both = await cli(['device', 'os-update', one.uuid, '2.0.0', '--clear']);
      assert.equal(both.code, 1);
      assert.equal(both.stderr, 'error: give a version or --clear, not both (VALIDATION_FAILED)\n');
      const neither = await cli(['fleet', 'os-update', slug]);
      assert.equal(neither.stderr, 'error: give the OS version (or --clear) (VALIDATION_FAILED)\n');

      const set = await flotillaJson<{ devices: string[] }>(config, ['fleet', 'os-update', slug, '2.0.0']);
      assert.equal(set.devices.length, 4);
      const all = await flotillaJson<ClearTargetOsAnswer>(config, ['fleet', 'os-update', slug, '--clear']);
      assert.deepEqual([...all.devices].sort(), devices.map((d) => d.uuid).sort());
      for (const d of devices) assert.equal((await info(d)).targetOs, null);
      const staged = await cli(['fleet', 'os-update', slug, '--clear', '--rollout', '50%,100%']);
      assert.equal(staged.stderr, 'error: --clear takes no rollout option (VALIDATION_FAILED)\n');
    });

    test('os release rm: refused while a device targets it, then gone from the list', async () => {
      const [one] = devices;
      assert.ok(one);
      await flotillaJson(config, ['device', 'os-update', one.uuid, '3.0.0']);
      const refused = await cli(['os', 'release', 'rm', 'generic-amd64', '3.0.0']);
      assert.equal(refused.code, 1);
      assert.match(
        refused.stderr,
        /^error: OS 3\.0\.0 for generic-amd64 is in use: device\(s\) .+ \(OS_RELEASE_IN_USE\)\n$/,
      );
      await flotillaJson(config, ['device', 'os-update', one.uuid, '--clear']);
      const removed = await cli(['os', 'release', 'rm', 'generic-amd64', '3.0.0']);
      assert.equal(removed.code, 0, removed.stderr);
      assert.equal(
        removed.stdout,
        "deleted OS 3.0.0 for generic-amd64; the registry's garbage collection frees its image\n",
      );
      const listed = await flotillaJson<OsRelease[]>(config, ['os', 'release', 'list']);
      assert.deepEqual(
        listed.map((r) => r.version),
        ['2.0.0'],
      );
      const again = await cli(['os', 'release', 'rm', 'generic-amd64', '3.0.0']);
      assert.equal(again.stderr, 'error: no OS 3.0.0 for device type generic-amd64 (OS_RELEASE_NOT_FOUND)\n');
    });

    test('fleet os-update --rollout stages the OS; a roll-back pauses it; rollout resume --os finishes it', async () => {
      for (const d of devices) {
        d.decideOs = () => 'roll-back';
        d.start();
      }
      const staged = await cli(['fleet', 'os-update', slug, '2.0.0', '--rollout', '25%,100%', '--soak', '0']);
      assert.equal(staged.code, 0, staged.stderr);
      assert.equal(
        staged.stdout,
        `OS 2.0.0 staged on ${slug}: 25% (1), 100% (3); batch 1 told. Follow it with \`flotilla rollout status ${slug} --os\`\n`,
      );
      await waitFor('the OS rollout to pause on the roll-back', async () => {
        const r = await flotillaJson<OsRollout>(config, ['rollout', 'status', slug, '--os']);
        return r.status === 'paused';
      });
      const shown = await cli(['rollout', 'status', slug, '--os']);
      assert.match(shown.stdout, /os: +2\.0\.0 \(generic-amd64\)\n/);
      assert.match(shown.stdout, /reason: +batch 1: 1 of 1 device\(s\) failed, more than 10%\n/);
      assert.match(shown.stdout, /failed +OS 2\.0\.0 rolled-back: the engine did not answer/);
      const appRollout = await cli(['rollout', 'status', slug]);
      assert.equal(
        appRollout.stderr,
        'error: the fleet has no rollout (ROLLOUT_NOT_FOUND)\n',
        'the app rollout is another',
      );

      for (const d of devices) d.decideOs = () => 'commit';
      const resumed = await cli(['rollout', 'resume', slug, '--os']);
      assert.equal(resumed.stdout, `OS rollout of 2.0.0 on ${slug}: running\n`);
      await waitFor('the OS rollout to complete', async () => {
        const r = await flotillaJson<OsRollout>(config, ['rollout', 'status', slug, '--os']);
        return r.status === 'completed';
      });
      assert.equal(devices.filter((d) => d.osVersion === '2.0.0').length, 3, 'the three of batch 2 committed');
      const late = await cli(['rollout', 'abort', slug, '--os']);
      assert.equal(late.code, 1);
      assert.equal(
        late.stderr,
        'error: the OS rollout is completed: it cannot abort (it must be running or paused) (ROLLOUT_STATE)\n',
      );

      // A stored policy stages it too; the device that rolled 2.0.0 back still says so, and fails it again.
      await flotillaJson(config, ['rollout', 'policy', 'set', slug, 'careful', '--rollout', '100%', '--soak', '0']);
      const byPolicy = await flotillaJson<OsRollout>(config, [
        'fleet',
        'os-update',
        slug,
        '2.0.0',
        '--rollout-policy',
        'careful',
      ]);
      assert.deepEqual(byPolicy.plan.batches, [100]);
      const again = await waitFor('the policy rollout to pause on the device that rolled back', async () => {
        const r = await flotillaJson<OsRollout>(config, ['rollout', 'status', slug, '--os']);
        return r.id === byPolicy.id && r.status === 'paused' ? r : undefined;
      });
      assert.deepEqual(
        again.batches.map((b) => [b.succeeded, b.failed]),
        [[3, 1]],
      );
    });
  });
}
