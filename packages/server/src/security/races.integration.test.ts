import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { AttackTally } from '../testing/attacks.js';
import { twoTenants, type HttpAnswer, type TwoTenants } from '../testing/tenants.js';

/** Fires all requests at once (a race, not a queue) and returns the answers in order. */
const race = (n: number, one: (i: number) => Promise<HttpAnswer>) =>
  Promise.all(Array.from({ length: n }, (_, i) => one(i)));

const count = (answers: HttpAnswer[], status: number) => answers.filter((r) => r.status === status).length;

for (const testDb of testDatabases()) {
  describe(`security: racing requests (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('concurrent writes of one thing end in one consistent state, with no 500', async () => {
      const { a } = t;
      const tally = new AttackTally('races');
      // Every answer is either the success of its kind or the documented conflict; never a 500.
      const settle = (what: string, answers: HttpAnswer[], allowed: number[]) => {
        for (const r of answers) tally.record(allowed.includes(r.status), `${what} → ${r.status} ${r.text}`);
      };

      // The same device UUID registered 40 times at once, each with its own key: one wins.
      const uuid = generateDeviceUuid();
      const keys = Array.from({ length: 40 }, () => generateKey());
      const registered = await race(40, (i) =>
        t.call('POST', '/device/register', {
          key: a.provisioningKey,
          body: { application: a.fleetId, uuid, device_type: 'generic-amd64', api_key: keys[i] },
        }),
      );
      settle('register the same uuid', registered, [201, 409]);
      assert.equal(count(registered, 201), 1, 'exactly one registration wins');
      const winner = keys[registered.findIndex((r) => r.status === 201)] as string;
      const polls = await Promise.all(keys.map((key) => t.call('GET', `/device/v3/${uuid}/state`, { key })));
      assert.deepEqual(
        polls.map((p, i) => (keys[i] === winner ? p.status === 200 : p.status === 401)),
        keys.map(() => true),
        "only the winner's key works",
      );
      const devices = await t.call('GET', `/api/v1/devices?fleet=${a.slug}`, { key: a.token });
      assert.equal(devices.data.items.filter((d: { uuid: string }) => d.uuid === uuid).length, 1);

      // The same fleet slug created 20 times at once: one wins, the rest are told it is taken.
      const fleets = await race(20, () =>
        t.call('POST', '/api/v1/fleets', { key: a.token, body: { name: 'raced', slug: 'raced', organization: a.org } }),
      );
      settle('create the same fleet slug', fleets, [201, 409]);
      assert.equal(count(fleets, 201), 1, 'exactly one fleet "raced"');

      // 40 releases created at once on one fleet: each gets its own version and commit.
      const releases = await race(40, (i) =>
        t.call('POST', `/api/v1/fleets/${a.slug}/releases`, {
          key: a.token,
          body: { composition: { services: { main: { image: `raced/image-${i}` } } }, status: 'success' },
        }),
      );
      settle('create releases', releases, [201, 409]);
      const created = releases
        .filter((r) => r.status === 201)
        .map((r) => r.data as { version: string; commit: string });
      assert.ok(created.length >= 1);
      const listed = await t.call('GET', `/api/v1/fleets/${a.slug}/releases`, { key: a.token });
      const versions = listed.data.items.map((r: { version: string }) => r.version);
      assert.equal(new Set(versions).size, versions.length, `duplicate versions: ${versions}`);
      assert.equal(listed.data.items.length, created.length + 1, 'every 201 is a stored release, nothing else');
      const fleet = await t.call('GET', `/api/v1/fleets/${a.slug}`, { key: a.token });
      assert.ok(
        created.some((r) => r.commit === fleet.data.targetRelease.commit),
        'the target is one of them',
      );

      // 40 writes of one fleet variable and 20 of one device variable at once, by POST and PUT.
      const fleetVar = await race(40, (i) =>
        t.call(i % 2 ? 'PUT' : 'POST', `/api/v1/fleets/${a.slug}/env`, {
          key: a.token,
          body: { name: 'RACED', value: `value ${i}` },
        }),
      );
      settle('write one fleet variable', fleetVar, [200, 201, 409]);
      const deviceVar = await race(20, (i) =>
        t.call(i % 2 ? 'PUT' : 'POST', `/api/v1/devices/${a.uuid}/env`, {
          key: a.token,
          body: { name: 'RACED', value: `value ${i}` },
        }),
      );
      settle('write one device variable', deviceVar, [200, 201, 409]);
      const config = await race(20, (i) =>
        t.call(i % 2 ? 'PUT' : 'POST', `/api/v1/fleets/${a.slug}/config`, {
          key: a.token,
          body: { name: 'BALENA_RACED', value: `value ${i}` },
        }),
      );
      settle('write one fleet config variable', config, [200, 201, 409]);
      const configs = (await t.call('GET', `/api/v1/fleets/${a.slug}/config`, { key: a.token })).data.items.filter(
        (v: { name: string }) => v.name === 'BALENA_RACED',
      );
      assert.equal(configs.length, 1, `one config variable BALENA_RACED, not ${configs.length}`);
      for (const path of [`/api/v1/fleets/${a.slug}/env`, `/api/v1/devices/${a.uuid}/env`]) {
        const vars = (await t.call('GET', path, { key: a.token })).data.items.filter(
          (v: { name: string }) => v.name === 'RACED',
        );
        assert.equal(vars.length, 1, `${path}: one variable RACED, not ${vars.length}`);
        assert.match(vars[0].value, /^value \d+$/);
      }
      // 20 writes of one device tag at once.
      const tags = await race(20, (i) =>
        t.call(i % 2 ? 'PUT' : 'POST', `/api/v1/devices/${a.uuid}/tags`, {
          key: a.token,
          body: { key: 'raced', value: `value ${i}` },
        }),
      );
      settle('write one device tag', tags, [200, 201, 409]);
      const raced = (await t.call('GET', `/api/v1/devices/${a.uuid}/tags`, { key: a.token })).data.items.filter(
        (x: { key: string }) => x.key === 'raced',
      );
      assert.equal(raced.length, 1, `one tag "raced", not ${raced.length}`);
      // The device is told one of the values.
      const state = await t.call('GET', `/device/v3/${a.uuid}/state`, { key: a.deviceKey });
      assert.equal(state.status, 200);
      assert.match(state.text, /"RACED":"value \d+"/);

      // 40 key exchanges for one device at once: afterwards exactly one of the new keys works, the old one not.
      const exchangeKeys = Array.from({ length: 40 }, () => generateKey());
      const exchanged = await race(40, (i) =>
        t.call('POST', `/api-key/device/${a.deviceId}/device-key`, {
          key: a.provisioningKey,
          body: { apiKey: exchangeKeys[i] },
        }),
      );
      settle('exchange the device key', exchanged, [200, 409]);
      const working = [];
      for (const key of [...exchangeKeys, a.deviceKey])
        if ((await t.call('GET', `/device/v3/${a.uuid}/state`, { key })).status === 200) working.push(key);
      assert.equal(working.length, 1, `${working.length} keys work after the race`);
      assert.notEqual(working[0], a.deviceKey, 'the old key no longer works');

      tally.finish('racing requests', 'answered as documented (no 500)');
      assert.ok(tally.attempts >= 240, `only ${tally.attempts} racing requests`);
    });
  });
}
