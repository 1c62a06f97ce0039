import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ERROR_CODE_HEADER, ODATA_ROUTES } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { type TwoTenants, twoTenants } from '../testing/tenants.js';

const RESOURCES = [
  'device',
  'application',
  'release',
  'device_tag',
  'device_environment_variable',
  'organization',
  'service_install',
  'device_service_environment_variable',
];
const FIELDS = [
  ...['id', 'uuid', 'device_name', 'belongs_to__application', 'slug', 'commit', 'status', 'name', 'value'],
  ...['device', 'installs__service', 'service_install', 'service_name'],
];
const NAVS = [
  ...['belongs_to__application', 'owns__device', 'owns__release', 'organization', 'device', 'application'],
  ...['service_install', 'installs__service', 'device_service_environment_variable'],
];

/** Filters built from real field and navigation names, aimed at tenant B's values, plus injection strings. */
function filterArb(b: TwoTenants['b']): fc.Arbitrary<string> {
  const value = fc.oneof(
    fc.constantFrom(`'${b.uuid}'`, `'${b.slug}'`, `'${b.releaseCommit}'`, String(b.deviceId), String(b.fleetId)),
    fc.constantFrom("'x'' or 1=1 --'", "'); drop table devices; --'", 'null', 'true', '-1', '1.5', "'\\u0000'"),
    fc.integer().map(String),
    fc.string({ maxLength: 20 }).map((s) => `'${s.replaceAll("'", "''")}'`),
  );
  const { expr } = fc.letrec((tie) => ({
    expr: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc
        .tuple(fc.constantFrom(...FIELDS), fc.constantFrom('eq', 'ne', 'gt', 'le'), value)
        .map(([f, op, v]) => `${f} ${op} ${v}`),
      fc.tuple(fc.constantFrom(...NAVS), fc.constantFrom(...FIELDS), value).map(([n, f, v]) => `${n}/${f} eq ${v}`),
      fc.tuple(fc.constantFrom(...NAVS), tie('expr')).map(([n, e]) => `${n}/any(x:${String(e)})`),
      fc
        .tuple(tie('expr'), fc.constantFrom('and', 'or'), tie('expr'))
        .map(([l, op, r]) => `(${String(l)}) ${op} (${String(r)})`),
      tie('expr').map((e) => `not (${String(e)})`),
      fc
        .tuple(fc.constantFrom(...FIELDS), fc.array(value, { maxLength: 5 }))
        .map(([f, vs]) => `${f} in (${vs.join(',')})`),
      // The string functions, aimed at B's values too (a prefix of B's UUID must not find B's device).
      fc
        .tuple(
          fc.constantFrom('startswith', 'endswith', 'contains', 'substringof'),
          fc.constantFrom(...FIELDS, ...NAVS.map((n) => `${n}/slug`)),
          fc.oneof(value, fc.constantFrom(`'${b.uuid.slice(0, 7)}'`, `'${b.slug.slice(0, 3)}'`, "'%'", "'_'")),
          fc.boolean(),
        )
        .map(([fn, f, v, wrapped]) => {
          const field = wrapped ? `tolower(${f})` : f;
          return fn === 'substringof' ? `${fn}(${v},${field})` : `${fn}(${field},${v})`;
        }),
      fc
        .tuple(fc.constantFrom('tolower', 'toupper'), fc.constantFrom(...FIELDS), value)
        .map(([fn, f, v]) => `${fn}(${f}) eq ${v}`),
    ),
  }));
  return expr as fc.Arbitrary<string>;
}

const expandArb: fc.Arbitrary<string> = fc
  .array(fc.constantFrom(...NAVS), { minLength: 1, maxLength: 8 })
  .map((navs) => navs.reduceRight((inner, nav) => (inner ? `${nav}($expand=${inner})` : nav), ''));

for (const testDb of testDatabases()) {
  describe(`OData: fuzzed queries get 200 or 400 with a code, never a 500 or another tenant's data (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    const check = async (path: string, key: string) => {
      const res = await t.call('GET', path, { key });
      assert.ok(res.status === 200 || res.status === 400 || res.status === 404, `${res.status} ${path}: ${res.text}`);
      if (res.status !== 200) {
        // balena clients print the body: plain text ending in the code, which the header carries too.
        const code = res.headers.get(ERROR_CODE_HEADER) ?? '';
        assert.match(code, /^[A-Z_]+$/, res.text);
        assert.ok(res.text.endsWith(`(${code})`), res.text);
      }
      for (const secret of [t.b.uuid, t.b.slug, t.b.releaseCommit, t.b.org])
        assert.ok(!res.text.includes(secret), `${path} leaked ${secret}: ${res.text.slice(0, 300)}`);
    };

    test('structured filters and deep expands, as A’s user key and as A’s device key', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...RESOURCES),
          filterArb(t.b),
          fc.option(expandArb),
          fc.boolean(),
          async (resource, filter, expand, asDevice) => {
            const query = `$filter=${encodeURIComponent(filter)}${expand ? `&$expand=${encodeURIComponent(expand)}` : ''}`;
            await check(`/v7/${resource}?${query}`, asDevice ? t.a.deviceKey : t.a.apiKey);
          },
        ),
        { numRuns: 300 },
      );
    });

    test('arbitrary text as each option, as keys and as resource paths', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('$filter', '$expand', '$select', '$orderby', '$top', '$skip'),
          fc.string({ maxLength: 300 }),
          async (option, text) => {
            await check(`/v7/device?${option}=${encodeURIComponent(text)}`, t.a.apiKey);
            await check(`/v7/device(${encodeURIComponent(text)})`, t.a.apiKey);
          },
        ),
        { numRuns: 200 },
      );
      const huge = Array.from({ length: 400 }, (_, i) => `id eq ${i}`).join(' or ');
      await check(`/v7/device?$filter=${encodeURIComponent(huge)}`, t.a.apiKey);
      const tooHuge = Array.from({ length: 4000 }, (_, i) => `id eq ${i}`).join(' or ');
      const res = await t.call('POST', '/v7/device_tag', {
        key: t.a.apiKey,
        body: { device: t.b.deviceId, tag_key: 'x', value: 'y' },
      });
      assert.equal(res.status, 404, res.text);
      const big = await t.call('GET', `/v7/device?$filter=${encodeURIComponent(tooHuge)}`, { key: t.a.apiKey });
      assert.ok([400, 414, 431].includes(big.status), `${big.status}`);
    });

    test('fuzzed PATCH and DELETE filters, as A’s user key and A’s device key, change nothing of B’s', async () => {
      const snapshot = async () => {
        const parts = [];
        for (const path of [
          `/api/v1/devices/${t.b.uuid}`,
          `/api/v1/devices/${t.b.uuid}/tags`,
          `/api/v1/devices/${t.b.uuid}/config`,
          `/api/v1/fleets/${t.b.slug}/env`,
          `/api/v1/devices/${t.b.uuid}/env`,
        ]) {
          const res = await t.call('GET', path, { key: t.b.token });
          assert.equal(res.status, 200, `${path}: ${res.text}`);
          parts.push(path.endsWith(t.b.uuid) ? res.data.name : res.data.items);
        }
        assert.ok(
          parts.every((p) => p && (typeof p === 'string' || p.length > 0)),
          JSON.stringify(parts),
        );
        return JSON.stringify(parts);
      };
      // B's device variable for a service (a device_service_environment_variable), among what must not change.
      const seeded = await t.call('POST', `/api/v1/devices/${t.b.uuid}/env`, {
        key: t.b.token,
        body: { name: 'B_SERVICE_SECRET', value: 'b', service: 'main' },
      });
      assert.equal(seeded.status, 200, seeded.text);
      const before = await snapshot();
      assert.match(before, /B_SERVICE_SECRET/);
      const writes = [
        ['PATCH', 'device', { device_name: 'pwned' }],
        ['PATCH', 'device_tag', { value: 'pwned' }],
        ['DELETE', 'device_tag', undefined],
        ['PATCH', 'device_config_variable', { value: 'pwned' }],
        ['DELETE', 'device_config_variable', undefined],
        ['DELETE', 'application_environment_variable', undefined],
        ['PATCH', 'device_service_environment_variable', { value: 'pwned' }],
        ['DELETE', 'device_service_environment_variable', undefined],
      ] as const;
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...writes),
          filterArb(t.b),
          fc.boolean(),
          async ([method, resource, body], filter, asDevice) => {
            const res = await t.call(method, `/v7/${resource}?$filter=${encodeURIComponent(filter)}`, {
              key: asDevice ? t.a.deviceKey : t.a.apiKey,
              ...(body ? { body } : {}),
            });
            assert.ok(
              [200, 400, 404].includes(res.status),
              `${res.status} ${method} ${resource} ${filter}: ${res.text}`,
            );
          },
        ),
        { numRuns: 200 },
      );
      assert.equal(await snapshot(), before);
    });

    test('every served OData and balena-compat route is an ODATA_ROUTES entry', () => {
      const table = new Set(Object.values(ODATA_ROUTES).map((r) => `${r.method} ${r.path}`));
      const served = t.server.app.flotilla.routes
        .filter((r) => /^\/(v6|v7|actor)\//.test(r.url) || r.url === '/config')
        .map((r) => `${r.method} ${r.url}`);
      assert.ok(served.length >= 7, `only ${served.length} routes served`);
      assert.deepEqual(
        served.filter((r) => !table.has(r)),
        [],
        'served but missing from ODATA_ROUTES',
      );
    });
  });
}
