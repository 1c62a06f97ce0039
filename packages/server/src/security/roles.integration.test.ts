import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { AttackTally } from '../testing/attacks.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';

/** An observer of the live server's organization: they read everything there and change nothing. */
for (const testDb of testDatabases()) {
  describe(`security: the observer role reads and changes nothing (${testDb.label})`, () => {
    let live: LiveDevice;
    let key: string;
    before(async () => {
      live = await liveServerWithDevice(testDb);
      const username = 'watcher';
      const password = generateKey();
      assert.equal((await live.api('POST', '/api/v1/users', { username, password })).status, 201);
      const token = (await live.api('POST', '/api/v1/auth/login', { username, password })).data.token as string;
      const org = (await live.api('GET', '/api/v1/whoami')).data.organizations[0].handle as string;
      await live.api('POST', `/api/v1/organizations/${org}/invitations`, { username, role: 'observer' });
      const invitation = (await live.api('GET', '/api/v1/invitations', undefined, token)).data.items[0];
      assert.equal(invitation.role, 'observer');
      await live.api('POST', `/api/v1/invitations/${invitation.id}/accept`, {}, token);
      key = (await live.api('POST', '/api/v1/api-keys', { name: 'observer' }, token)).data.key;
    });
    after(() => live.close());

    test('reads are allowed; every write is refused, and says why', async () => {
      const { slug, uuid } = live;
      for (const path of [`/api/v1/fleets/${slug}`, `/api/v1/devices/${uuid}`, `/api/v1/fleets/${slug}/releases`])
        assert.equal((await live.api('GET', path, undefined, key)).status, 200, path);
      // Variables for the observer's deletes to aim at: still there afterwards.
      await live.api('POST', `/api/v1/fleets/${slug}/env`, { name: 'A', value: 'kept' });
      await live.api('POST', `/api/v1/fleets/${slug}/config`, { name: 'FLOTILLA_A', value: 'kept' });
      await live.api('POST', `/api/v1/devices/${uuid}/env`, { name: 'A', value: 'kept', service: 'main' });
      await live.api('POST', `/api/v1/devices/${uuid}/config`, { name: 'BALENA_A', value: 'kept' });
      const variables = async () =>
        Promise.all(
          [`/api/v1/fleets/${slug}/env`, `/api/v1/fleets/${slug}/config`].flatMap((fleetPath, i) => [
            live.api('GET', fleetPath).then((a) => a.data.items),
            live.api('GET', `/api/v1/devices/${uuid}/${i === 0 ? 'env' : 'config'}`).then((a) => a.data.items),
          ]),
        );
      const stored = await variables();
      // A rollout the observer reads but cannot pause, resume, abort or replace.
      const staged = await live.api('POST', `/api/v1/fleets/${slug}/releases`, {
        composition: { services: { main: { image: 'x/y' } } },
      });
      const rollout = await live.api('POST', `/api/v1/fleets/${slug}/rollouts`, {
        release: staged.data.id,
        batches: [50, 100],
      });
      assert.equal(rollout.status, 201, JSON.stringify(rollout.data));
      assert.equal((await live.api('GET', `/api/v1/fleets/${slug}/rollout`, undefined, key)).status, 200);
      const writes: Array<[string, string, unknown?]> = [
        ['PATCH', `/api/v1/fleets/${slug}`, { name: 'renamed' }],
        ['DELETE', `/api/v1/fleets/${slug}`],
        ['POST', `/api/v1/fleets/${slug}/env`, { name: 'A', value: '1' }],
        ['PUT', `/api/v1/fleets/${slug}/config`, { name: 'FLOTILLA_A', value: '1' }],
        ['DELETE', `/api/v1/fleets/${slug}/env/A?exact=1`],
        ['DELETE', `/api/v1/fleets/${slug}/config/FLOTILLA_A`],
        ['POST', `/api/v1/devices/${uuid}/env`, { name: 'A', value: '1', service: 'main' }],
        ['POST', `/api/v1/devices/${uuid}/config`, { name: 'BALENA_A', value: '1' }],
        ['DELETE', `/api/v1/devices/${uuid}/env/A?service=main`],
        ['DELETE', `/api/v1/devices/${uuid}/config/BALENA_A`],
        ['POST', `/api/v1/fleets/${slug}/releases`, { composition: { services: { main: { image: 'x/y' } } } }],
        ['PATCH', `/api/v1/devices/${uuid}`, { name: 'renamed' }],
        ['DELETE', `/api/v1/devices/${uuid}`],
        ['POST', `/api/v1/devices/${uuid}/actions?wait=0`, { action: 'reboot' }],
        ['POST', `/api/v1/devices/${uuid}/tags`, { key: 'k', value: 'v' }],
        ['PUT', `/api/v1/devices/${uuid}/public-url`, { port: 80 }],
        ['POST', `/api/v1/fleets/${slug}/rollouts`, { release: staged.data.id, batches: [100] }],
        ['POST', `/api/v1/fleets/${slug}/rollout/pause`],
        ['POST', `/api/v1/fleets/${slug}/rollout/resume`],
        ['POST', `/api/v1/fleets/${slug}/rollout/abort`],
        ['PUT', `/api/v1/fleets/${slug}/rollout-policies/canary`, { batches: [100] }],
        ['DELETE', `/api/v1/fleets/${slug}/rollout-policies/canary`],
        ['PUT', `/api/v1/fleets/${slug}/update-window`, { cron: '0 2 * * *', durationSeconds: 3600, timezone: 'UTC' }],
        ['DELETE', `/api/v1/fleets/${slug}/update-window`],
        ['PUT', `/api/v1/devices/${uuid}/update-window`, { cron: '0 2 * * *', durationSeconds: 3600, timezone: 'UTC' }],
        ['DELETE', `/api/v1/devices/${uuid}/update-window`],
      ];
      const tally = new AttackTally('observer writes');
      for (const [method, path, body] of writes) {
        const answer = await live.api(method, path, body, key);
        const refused = answer.status === 404 && /observers only read/.test(answer.data?.error?.message ?? '');
        tally.record(refused, `${method} ${path} → ${answer.status} ${JSON.stringify(answer.data)}`);
      }
      tally.finish();
      // Nothing changed: the fleet and the device are as they were.
      assert.equal((await live.api('GET', `/api/v1/fleets/${slug}`)).data.name, slug);
      assert.equal((await live.api('GET', `/api/v1/devices/${uuid}`)).status, 200);
      assert.deepEqual(await variables(), stored);
      const after = (await live.api('GET', `/api/v1/fleets/${slug}/rollout`)).data;
      assert.deepEqual([after.id, after.status], [rollout.data.id, 'running']);
      assert.equal(stored.flat().length, 4);
    });
  });
}
