import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Device, DeviceStatusFilter } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import type { Harness } from '../testing/harness.js';
import { harness } from '../testing/harness.js';
import { seedDevices, type SeededDevice } from '../testing/seed-devices.js';
import { userFromToken } from '../auth/principal.js';
import { listDevices } from './device-list.js';
import { deviceStateOf, matchesStatus } from './device-status.js';

const COMMIT_A = 'aaaaaaa1111111111111111111111111';
const COMMIT_B = 'aaaaaaa2222222222222222222222222';
const MINUTE = 60_000;

/**
 * A fleet of 300 devices covering every filter: names in mixed case with duplicates, three ages of last sign of
 * life, four reported statuses, `update_failed` flags, two running releases sharing a 7-character prefix, tags, and creation times in
 * the reverse order of their ids.
 */
function shape(now: number) {
  return (i: number): Partial<SeededDevice> => ({
    name: i % 50 === 0 ? 'Same name' : i % 10 === 0 ? `Kitchen-${i}` : `dev_${String(i).padStart(3, '0')}`,
    last_seen_at:
      i % 3 === 0 ? null : new Date(now - (i % 3 === 1 ? MINUTE : 120 * MINUTE) - (i % 1000) * 1000).toISOString(),
    status: [null, 'Idle', 'Updating', 'Update failed', 'updating'][i % 5] ?? null,
    // The balena Supervisor's way of saying it: failed whatever the status says, even `Updating`.
    update_failed: i % 7 === 1 ? 1 : 0,
    running_release: i % 4 === 0 ? COMMIT_A : i % 4 === 1 ? COMMIT_B : null,
    created_at: new Date(now - (i % 1000) * 1000).toISOString(),
  });
}

type Query = Record<string, string | number>;

const stateRow = (d: Partial<SeededDevice>) => ({
  last_seen_at: d.last_seen_at ?? null,
  status: d.status ?? null,
  update_failed: d.update_failed ?? 0,
});

for (const testDb of testDatabases()) {
  describe(`GET /api/v1/devices: search, filters, sorts and pages in SQL (${testDb.label})`, () => {
    let h: Harness;
    let seeded: (SeededDevice & { id: number; tags: string[] })[];
    const now = Date.now();
    const list = async (query: Query): Promise<{ items: Device[]; total: number }> => {
      const search = new URLSearchParams(
        Object.entries({ fleet: 'many', ...query }).map(([k, v]) => [k, String(v)] as [string, string]),
      );
      const res = await h.call('GET', `/api/v1/devices?${search}`, h.adminKey);
      assert.equal(res.statusCode, 200, res.body);
      return res.data;
    };
    /** Every page of a query, `limit` at a time: the pages must join up into the whole list. */
    const allPages = async (query: Query, limit: number) => {
      const out: Device[] = [];
      for (let offset = 0; ; offset += limit) {
        const page = await list({ ...query, limit, offset });
        out.push(...page.items);
        if (page.items.length < limit) return { items: out, total: page.total };
      }
    };
    const uuids = (devices: { uuid: string }[]) => devices.map((d) => d.uuid);

    before(async () => {
      h = await harness(testDb);
      const fleet = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'many', slug: 'many' });
      const other = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'other', slug: 'other' });
      const { db } = h.app.flotilla;
      const rows = await seedDevices(db, fleet.data.id, 300, shape(now));
      await seedDevices(db, other.data.id, 20, (i) => ({ name: `Kitchen-other-${i}`, running_release: COMMIT_A }));
      const ids = await db.selectFrom('devices').select(['id', 'uuid']).execute();
      const idOf = new Map(ids.map((r) => [r.uuid, r.id]));
      seeded = rows.map((r) => ({ ...r, id: idOf.get(r.uuid) ?? -1, tags: [] }));
      for (const device of seeded.filter((_, i) => i % 7 === 0)) {
        const value = device.id % 2 ? 'Floor North' : 'Floor South';
        await db.insertInto('device_tags').values({ device_id: device.id, key: 'location', value }).execute();
        device.tags.push(value);
      }
    });
    after(() => h.close());

    test('without paging parameters: the first 100 in id order, and the total', async () => {
      const page = await list({});
      assert.equal(page.total, 300);
      assert.equal(page.items.length, 100);
      assert.deepEqual(uuids(page.items), uuids(seeded.slice(0, 100)));
      const everything = await h.call('GET', '/api/v1/devices?limit=1000', h.adminKey);
      assert.equal(everything.data.total, 320, 'both fleets without ?fleet=');
    });

    test('status filters follow the definitions of device-status.ts', async () => {
      const counts: Record<string, number> = {};
      for (const status of ['online', 'offline', 'updating', 'failed'] as DeviceStatusFilter[]) {
        const expected = seeded.filter((d) => matchesStatus(deviceStateOf(stateRow(d), now), status));
        const got = await list({ status, limit: 1000 });
        assert.equal(got.total, expected.length, status);
        assert.deepEqual(uuids(got.items), uuids(expected), status);
        counts[status] = got.total;
      }
      // Seen a minute ago: i % 3 === 1; of those, failed: i % 5 is 3 (Update failed) or i % 7 is 1 (update_failed);
      // updating: i % 5 is 2 or 4 (Updating, updating) and not failed.
      assert.deepEqual(counts, { online: 100, offline: 200, updating: 34, failed: 32 });
      for (const d of (await list({ status: 'online', limit: 1000 })).items) assert.equal(d.isOnline, true);
    });

    test('search: name substring in any case, UUID prefix, tag value substring', async () => {
      const kitchens = await list({ search: 'kITCHen', limit: 1000 });
      assert.deepEqual(uuids(kitchens.items), uuids(seeded.filter((d) => d.name.startsWith('Kitchen-'))));
      const target = seeded[123]!;
      const byUuid = await list({ search: target.uuid.slice(0, 10) });
      assert.deepEqual(uuids(byUuid.items), [target.uuid]);
      const north = await list({ search: 'north', limit: 1000 });
      assert.deepEqual(uuids(north.items), uuids(seeded.filter((d) => d.tags.includes('Floor North'))));
      assert.ok(north.total > 0);
      // LIKE wildcards are searched as themselves: `_` matches the underscore of dev_ names only.
      const underscore = await list({ search: '_', limit: 1000 });
      assert.deepEqual(uuids(underscore.items), uuids(seeded.filter((d) => d.name.includes('_'))));
      assert.equal((await list({ search: '%' })).total, 0);
    });

    test('release: a full commit, or a prefix of 7+ characters; a shorter one matches only whole', async () => {
      assert.deepEqual(
        uuids((await list({ release: COMMIT_A, limit: 1000 })).items),
        uuids(seeded.filter((d) => d.running_release === COMMIT_A)),
      );
      assert.equal((await list({ release: COMMIT_B.slice(0, 9) })).total, 75);
      assert.equal((await list({ release: 'aaaaaaa' })).total, 150, 'both commits share this prefix');
      assert.equal((await list({ release: 'aaaaaa' })).total, 0);
      const combined = await list({ release: COMMIT_A, status: 'online', search: 'dev', limit: 1000 });
      const expected = seeded.filter(
        (d) =>
          d.running_release === COMMIT_A &&
          deviceStateOf(stateRow(d), now) !== 'offline' &&
          d.name.toLowerCase().includes('dev'),
      );
      assert.deepEqual(uuids(combined.items), uuids(expected));
    });

    test('sorts, each way, with ties broken by id; pages join up into the whole list', async () => {
      const byId = (a: { id: number }, b: { id: number }) => a.id - b.id;
      const key = (d: (typeof seeded)[number], sort: string): string | number => {
        if (sort === 'name') return d.name.toLowerCase();
        if (sort === 'lastSeen') return d.last_seen_at ?? '';
        if (sort === 'created') return d.created_at;
        const state = deviceStateOf(stateRow(d), now);
        return ['idle', 'updating', 'failed', 'offline'].indexOf(state);
      };
      for (const sort of ['name', 'lastSeen', 'status', 'created']) {
        for (const descending of [false, true]) {
          const expected = [...seeded].sort((a, b) => {
            const x = key(a, sort);
            const y = key(b, sort);
            const order = x < y ? -1 : x > y ? 1 : byId(a, b);
            return descending ? -order : order;
          });
          const name = `${descending ? '-' : ''}${sort}`;
          const whole = await list({ sort: name, limit: 1000 });
          assert.deepEqual(uuids(whole.items), uuids(expected), name);
          const paged = await allPages({ sort: name }, 37);
          assert.equal(paged.total, 300);
          assert.deepEqual(uuids(paged.items), uuids(expected), `${name} in pages of 37`);
        }
      }
      const pastTheEnd = await list({ offset: 300 });
      assert.deepEqual(pastTheEnd, { items: [], total: 300 });
    });

    test('a page costs a fixed number of queries, whatever its size', async () => {
      const { db, dialect } = h.app.flotilla;
      const user = await userFromToken(db, h.adminKey);
      assert.ok(user);
      for (const limit of [1, 10, 1000]) {
        let queries = 0;
        const counting = db.withPlugin({
          transformQuery: (args) => {
            queries += 1;
            return args.node;
          },
          transformResult: async (args) => args.result,
        });
        const page = await listDevices(counting, dialect, user, { limit, sort: '-lastSeen' });
        assert.equal(page.items.length, Math.min(limit, 320));
        // The fleet lookup is skipped without ?fleet=; count, page, then fleets, pins, one target and one rollout per
        // fleet.
        assert.ok(queries <= 6, `${queries} queries for a page of ${limit}`);
      }
    });

    test('bad queries are refused; an unknown fleet is a 404', async () => {
      for (const query of ['limit=0', 'limit=1001', 'offset=-1', 'status=sleeping', 'sort=uuid', 'limit=ten']) {
        const res = await h.call('GET', `/api/v1/devices?fleet=many&${query}`, h.adminKey);
        assert.equal(res.statusCode, 400, query);
        assert.equal(res.data.error.code, 'VALIDATION_FAILED');
      }
      const res = await h.call('GET', '/api/v1/devices?fleet=nope', h.adminKey);
      assert.equal(res.data.error.code, 'FLEET_NOT_FOUND');
    });
  });

  describe(`GET /api/v1/devices at 10,000 devices in a fleet (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
      const fleet = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'huge', slug: 'huge' });
      const now = Date.now();
      const rows = await seedDevices(h.app.flotilla.db, fleet.data.id, 10_000, shape(now));
      const sample = await h.app.flotilla.db.selectFrom('devices').select('id').limit(2_000).execute();
      for (const { id } of sample.filter((_, i) => i % 3 === 0))
        await h.app.flotilla.db
          .insertInto('device_tags')
          .values({ device_id: id, key: 'site', value: `Site ${id % 40}` })
          .execute();
      assert.equal(rows.length, 10_000);
    });
    after(() => h.close());

    test('a page of 100 in well under 500 ms, whatever the filters and sort', async () => {
      const queries = [
        'limit=100',
        'sort=name&limit=100&offset=9900',
        'sort=-lastSeen&status=online&limit=100&offset=1000',
        'sort=status&limit=100&offset=5000',
        'search=kitchen&sort=-name&limit=100',
        'search=site%2017&limit=100',
        'status=failed&release=aaaaaaa2&limit=100',
        'sort=created&limit=1000',
      ];
      const times: string[] = [];
      let worst = 0;
      // One call first: the timing is of the query, not of the first request's route compilation.
      await h.call('GET', '/api/v1/devices?fleet=huge&limit=1', h.adminKey);
      for (const query of queries) {
        const started = performance.now();
        const res = await h.call('GET', `/api/v1/devices?fleet=huge&${query}`, h.adminKey);
        const ms = performance.now() - started;
        assert.equal(res.statusCode, 200, res.body);
        assert.ok(res.data.items.length > 0, query);
        worst = Math.max(worst, ms);
        times.push(`${query}: ${ms.toFixed(1)} ms (${res.data.items.length} of ${res.data.total})`);
      }
      console.log(`# device list at 10,000 devices (${testDb.label}):\n#   ${times.join('\n#   ')}`);
      assert.ok(worst < 500, `slowest page took ${worst.toFixed(0)} ms`);
    });
  });
}
