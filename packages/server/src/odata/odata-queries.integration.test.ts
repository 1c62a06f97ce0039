import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODE_HEADER } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { seedDevices } from '../testing/seed-devices.js';
import { RESOURCES } from './resources.js';
import { type TwoTenants, twoTenants } from '../testing/tenants.js';

const q = encodeURIComponent;

/** The OData options beyond what the Supervisor and the SDK's common calls send, against a live server. */
for (const testDb of testDatabases()) {
  describe(`OData: $expand, $count, $orderby, $top, $skip, keys, services and images (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('nested $expand with its own $select, $filter, $top, $orderby; nav/$count; /$count', async () => {
      const { a } = t;
      const expand =
        `owns__device($select=uuid,device_name;$filter=uuid eq '${a.uuid}'),` +
        'owns__release($top=1;$orderby=created_at desc;$select=commit;' +
        '$expand=contains__image($expand=image($select=status,is_a_build_of__service;$expand=is_a_build_of__service))),' +
        'owns__device/$count,organization($select=handle)';
      const res = await t.call('GET', `/v7/application(slug='${a.slug}')?$select=id,slug&$expand=${q(expand)}`, {
        key: a.apiKey,
      });
      assert.equal(res.status, 200, res.text);
      const [fleet] = res.data.d;
      assert.equal(fleet.id, a.fleetId);
      assert.deepEqual(fleet.owns__device, 1);
      assert.deepEqual(fleet.organization, [{ handle: a.org }]);
      assert.deepEqual(fleet.owns__release.length, 1);
      assert.equal(fleet.owns__release[0].commit, a.releaseCommit);
      const [link] = fleet.owns__release[0].contains__image;
      assert.equal(link.is_part_of__release.__id, a.releaseId);
      const [image] = link.image;
      assert.equal(image.status, 'success');
      assert.deepEqual(image.is_a_build_of__service[0].service_name, 'main');
      assert.deepEqual((await t.call('GET', '/v7/device/$count', { key: a.apiKey })).data, { d: 1 });
      const none = `uuid eq '${t.b.uuid}'`;
      assert.deepEqual((await t.call('GET', `/v7/device/$count?$filter=${q(none)}`, { key: a.apiKey })).data, { d: 0 });
    });

    test('every field of every resource can be selected, filtered on and sorted by, as a user and as a device', async () => {
      const literal = { integer: '0', number: '0', boolean: 'true', text: "'x'", datetime: "'2020-01-01'" } as const;
      for (const [name, resource] of Object.entries(RESOURCES)) {
        for (const [field, { type }] of Object.entries(resource.fields)) {
          const filter = q(`${field} ne ${literal[type]} or ${field} eq null`);
          const path = `/v7/${name}?$select=${field},${field}&$filter=${filter}&$orderby=${field} desc&$top=3`;
          for (const key of [t.a.apiKey, t.a.deviceKey]) {
            const res = await t.call('GET', path, { key });
            assert.equal(res.status, 200, `${path}: ${res.text}`);
          }
        }
        const expands = Object.keys(resource.navigations).join(',');
        if (expands && 'id' in resource.fields) {
          const res = await t.call('GET', `/v7/${name}?$expand=${q(expands)}&$top=2`, { key: t.a.apiKey });
          assert.equal(res.status, 200, `${name} $expand=${expands}: ${res.text}`);
        }
      }
    });

    test('service installs: a device × a service of its fleet, filtered and expanded both ways; never another tenant’s', async () => {
      const { a, b } = t;
      const read = async (path: string, key = a.apiKey) => {
        const res = await t.call('GET', path, { key });
        assert.equal(res.status, 200, `${path}: ${res.text}`);
        return res.data.d;
      };
      const [service] = await read(`/v7/service?$select=id,created_at&$filter=${q(`application eq ${a.fleetId}`)}`);
      const [device] = await read(`/v7/device(${a.deviceId})?$select=created_at`);
      // An install exists from when both its device and its service (its first release) do.
      const createdAt = [device.created_at, service.created_at].sort()[1];
      assert.ok(createdAt > device.created_at, 'the release was made after the device: the install’s time is its');
      const serviceId = service.id as number;
      // The id is the Cantor pairing of the device's and the service's ids (service-resources.ts).
      const installId = ((a.deviceId + serviceId) * (a.deviceId + serviceId + 1)) / 2 + serviceId;
      const expand = q('device($select=uuid),installs__service($select=service_name)');
      assert.deepEqual(await read(`/v7/service_install?$filter=${q(`device eq ${a.deviceId}`)}&$expand=${expand}`), [
        {
          id: installId,
          device: [{ uuid: a.uuid }],
          installs__service: [{ service_name: 'main' }],
          created_at: createdAt,
        },
      ]);
      for (const filter of [
        `device/uuid eq '${a.uuid}' and installs__service/service_name eq 'main'`,
        `installs__service/any(s:s/service_name eq 'main') and device/any(d:d/belongs_to__application eq ${a.fleetId})`,
        `id in (${installId}, 1, 2)`,
      ])
        assert.deepEqual(
          await read(`/v7/service_install?$select=id&$filter=${q(filter)}`),
          [{ id: installId }],
          filter,
        );
      assert.deepEqual(await read(`/v7/device(${a.deviceId})?$select=id&$expand=${q('service_install($select=id)')}`), [
        { id: a.deviceId, service_install: [{ id: installId }] },
      ]);
      assert.deepEqual(await read(`/v7/service(${serviceId})?$select=id&$expand=${q('service_install/$count')}`), [
        { id: serviceId, service_install: 1 },
      ]);
      // A device key sees its own device's installs, by the same id.
      assert.deepEqual(await read('/v7/service_install?$select=id', a.deviceKey), [{ id: installId }]);

      // Its variables: a device variable for a service, as /api/v1 writes it, and one for a service no release has.
      for (const [name, service] of [
        ['INSTALLED', 'main'],
        ['UNINSTALLED', 'ghost'],
      ]) {
        const res = await t.call('POST', `/api/v1/devices/${a.uuid}/env`, {
          key: a.token,
          body: { name, value: `${name} value`, service },
        });
        assert.equal(res.status, 200, res.text);
      }
      try {
        const vars = await read(
          `/v7/device_service_environment_variable?$select=name,value,service_install&$orderby=name desc&$expand=${q(
            'service_install($select=id;$expand=installs__service($select=service_name))',
          )}`,
        );
        assert.deepEqual(vars, [
          { name: 'UNINSTALLED', value: 'UNINSTALLED value', service_install: [] },
          {
            name: 'INSTALLED',
            value: 'INSTALLED value',
            service_install: [{ id: installId, installs__service: [{ service_name: 'main' }] }],
          },
        ]);
        const names = async (filter: string, key = a.apiKey) =>
          (await read(`/v7/device_service_environment_variable?$select=name&$filter=${q(filter)}`, key)).map(
            (v: { name: string }) => v.name,
          );
        assert.deepEqual(await names(`service_install eq ${installId}`), ['INSTALLED']);
        assert.deepEqual(await names('service_install eq null'), ['UNINSTALLED']);
        assert.deepEqual(await names(`service_install/any(si:si/device eq ${a.deviceId})`), ['INSTALLED']);
        assert.deepEqual(await names(`service_install/installs__service/service_name eq 'main'`), ['INSTALLED']);
        assert.deepEqual(await names(`startswith(name,'INST')`, a.deviceKey), ['INSTALLED']);
        assert.deepEqual(
          await read(
            `/v7/service_install(${installId})?$select=id&$expand=${q('device_service_environment_variable($select=name)')}`,
          ),
          [{ id: installId, device_service_environment_variable: [{ name: 'INSTALLED' }] }],
        );
        // A device's service variables are not its device-wide variables, and the other way round.
        assert.ok(
          !(await read(`/v7/device_environment_variable?$select=name`)).some((v: { name: string }) =>
            ['INSTALLED', 'UNINSTALLED'].includes(v.name),
          ),
        );
        assert.ok(!(await names(`name eq '${a.envName}'`)).length);
      } finally {
        await t.server.app.flotilla.db
          .deleteFrom('env_vars')
          .where('name', 'in', ['INSTALLED', 'UNINSTALLED'])
          .execute();
      }

      // Tenant B's installs: not by key, filter, lambda or expansion.
      const [theirs] = await read(`/v7/service_install?$select=id&$filter=${q(`device eq ${b.deviceId}`)}`, b.apiKey);
      for (const path of [
        `/v7/service_install(${theirs.id})`,
        `/v7/service_install?$filter=${q(`device eq ${b.deviceId}`)}`,
        `/v7/service_install?$filter=${q(`device/uuid eq '${b.uuid}'`)}`,
        `/v7/device?$filter=${q(`service_install/any(si:si/id eq ${theirs.id})`)}`,
        `/v7/service?$filter=${q(`service_install/any(si:si/device eq ${b.deviceId})`)}`,
      ])
        for (const key of [a.apiKey, a.deviceKey]) assert.deepEqual(await read(path, key), [], path);
    });

    test('$orderby, $top, $skip page without repeats; device types are public', async () => {
      const all = await t.call('GET', '/v7/device_type?$orderby=slug desc&$select=slug', { key: t.a.apiKey });
      const slugs = all.data.d.map((x: { slug: string }) => x.slug);
      assert.deepEqual(slugs, [...slugs].sort().reverse());
      const pages: string[] = [];
      for (let skip = 0; skip < slugs.length; skip += 4) {
        const page = await t.call('GET', `/v7/device_type?$orderby=slug desc&$select=slug&$top=4&$skip=${skip}`, {
          key: t.a.deviceKey,
        });
        pages.push(...page.data.d.map((x: { slug: string }) => x.slug));
      }
      assert.deepEqual(pages, slugs);
    });

    test('keys and lambdas never reach another tenant; unknown names are 400 INVALID_ODATA_QUERY', async () => {
      const { a, b } = t;
      for (const path of [
        `/v7/organization(handle='${b.org}')`,
        `/v7/application(${b.fleetId})`,
        `/v7/device(uuid='${b.uuid}')`,
        `/v7/release(commit='${b.releaseCommit}')`,
        `/v7/user?$filter=${q(`username eq '${b.username}'`)}`,
        `/v7/application?$filter=${q(`owns__device/any(d:d/uuid eq '${b.uuid}')`)}`,
        `/v7/device?$filter=${q(`belongs_to__application/slug eq '${b.slug}'`)}`,
        `/v7/service?$filter=${q(`application eq ${b.fleetId}`)}`,
        `/v7/image?$expand=is_a_build_of__service`,
      ]) {
        const res = await t.call('GET', path, { key: a.apiKey });
        assert.equal(res.status, 200, `${path}: ${res.text}`);
        assert.ok(!res.text.includes(b.slug) && !res.text.includes(b.uuid), `${path}: ${res.text}`);
        if (!path.startsWith('/v7/image')) assert.deepEqual(res.data.d, [], path);
      }
      for (const path of [
        '/v7/api_key',
        '/v7/device?$select=key_hash',
        `/v7/device?$filter=${q("key_hash eq 'x'")}`,
        '/v7/device?$expand=owns__device',
        '/v7/device(1;drop)',
        `/v7/device?$filter=${q("id eq 'x'")}`,
      ]) {
        const res = await t.call('GET', path, { key: a.apiKey });
        assert.equal(res.status, 400, `${path}: ${res.text}`);
        assert.equal(res.headers.get(ERROR_CODE_HEADER), 'INVALID_ODATA_QUERY', path);
      }
    });

    test('string functions: startswith (balena-sdk’s short UUID), endswith, contains, substringof, tolower, toupper', async () => {
      const { a, b } = t;
      const ids = async (filter: string, key = a.apiKey) => {
        const res = await t.call('GET', `/v7/device?$select=id&$filter=${q(filter)}`, { key });
        assert.equal(res.status, 200, `${filter}: ${res.text}`);
        return res.data.d.map((d: { id: number }) => d.id);
      };
      const short = a.uuid.slice(0, 7);
      const name = a.deviceName; // `<tenant>-device`
      const upper = name.toUpperCase();
      const cases: Array<[string, number[]]> = [
        [`startswith(uuid,'${short}')`, [a.deviceId]],
        [`startswith(uuid,'${short.toUpperCase()}')`, short === short.toUpperCase() ? [a.deviceId] : []],
        [`endswith(uuid,'${a.uuid.slice(-5)}')`, [a.deviceId]],
        [`endswith(uuid,'${a.uuid}x')`, []],
        [`contains(device_name,'${name.slice(2, 6)}')`, [a.deviceId]],
        [`substringof('${name.slice(2, 6)}',device_name)`, [a.deviceId]],
        [`contains(device_name,'%')`, []],
        [`contains(device_name,'_')`, name.includes('_') ? [a.deviceId] : []],
        [`startswith(uuid,'') and startswith(device_name,'${name}')`, [a.deviceId]],
        [`tolower(device_name) eq '${name.toLowerCase()}'`, [a.deviceId]],
        [`toupper(device_name) eq '${upper}'`, [a.deviceId]],
        [`toupper(device_name) in ('${upper}','OTHER')`, [a.deviceId]],
        [`startswith(tolower(device_name),'${name.slice(0, 3).toLowerCase()}')`, [a.deviceId]],
        [`startswith(uuid,'${short}') eq true`, [a.deviceId]],
        [`startswith(uuid,'${short}') eq false`, []],
        [`not startswith(uuid,'${short}')`, []],
        [`startswith(belongs_to__application/slug,'${a.slug.slice(0, 4)}')`, [a.deviceId]],
        [`device_tag/any(d:startswith(d/tag_key,'zz-none'))`, []],
        // Another tenant's device is never matched, however the function is written.
        [`startswith(uuid,'${b.uuid.slice(0, 7)}')`, []],
        [`contains(uuid,'${b.uuid.slice(3, 20)}')`, []],
      ];
      for (const [filter, expected] of cases) assert.deepEqual(await ids(filter), expected, filter);
      for (const filter of [
        'startswith(uuid)',
        "startswith(uuid,'a','b')",
        "startswith(id,'1')",
        'startswith(uuid,1)',
        "startswith('a','b')",
        "frobnicate(uuid,'a')",
        'tolower(device_name)',
        "tolower('x') eq 'x'",
        "belongs_to__application/startswith(slug,'x') eq true",
        `${'startswith('.repeat(30)}uuid,'a')`,
      ]) {
        const res = await t.call('GET', `/v7/device?$filter=${q(filter)}`, { key: a.apiKey });
        assert.equal(res.status, 400, `${filter}: ${res.text}`);
        assert.equal(res.headers.get(ERROR_CODE_HEADER), 'INVALID_ODATA_QUERY', filter);
      }
    });

    test('$orderby through navigations to one row; through a navigation to many rows it is a 400', async () => {
      const { a } = t;
      const db = t.server.app.flotilla.db;
      const seeded = await seedDevices(db, a.fleetId, 3, (i) => ({ name: `order-${2 - i}` }));
      const devices = await db
        .selectFrom('devices')
        .select(['id', 'name'])
        .where(
          'uuid',
          'in',
          seeded.map((d) => d.uuid),
        )
        .execute();
      const now = new Date().toISOString();
      await db
        .insertInto('env_vars')
        .values(
          devices.map((d) => ({
            fleet_id: a.fleetId,
            device_id: d.id,
            name: 'ORDERED',
            value: d.name,
            created_at: now,
          })),
        )
        .execute();
      try {
        const read = async (orderby: string) => {
          const res = await t.call(
            'GET',
            `/v7/device_environment_variable?$select=value&$filter=${q("name eq 'ORDERED'")}&$orderby=${q(orderby)}`,
            { key: a.apiKey },
          );
          assert.equal(res.status, 200, `${orderby}: ${res.text}`);
          return res.data.d.map((v: { value: string }) => v.value);
        };
        assert.deepEqual(await read('device/device_name desc'), ['order-2', 'order-1', 'order-0']);
        assert.deepEqual(await read('device/device_name asc'), ['order-0', 'order-1', 'order-2']);
        // Two hops (the same fleet for every row), then the name.
        assert.deepEqual(await read('device/belongs_to__application/slug desc,device/device_name desc'), [
          'order-2',
          'order-1',
          'order-0',
        ]);
        for (const orderby of ['owns__device/uuid', 'device/device_tag/tag_key', 'device/nope', 'nope/id']) {
          const res = await t.call('GET', `/v7/application?$orderby=${q(orderby)}`, { key: a.apiKey });
          assert.equal(res.status, 400, `${orderby}: ${res.text}`);
          assert.equal(res.headers.get(ERROR_CODE_HEADER), 'INVALID_ODATA_QUERY', orderby);
        }
      } finally {
        await db.deleteFrom('env_vars').where('name', '=', 'ORDERED').execute();
        await db.deleteFrom('devices').where('name', 'like', 'order-%').execute();
      }
    });

    test('a 5,000-device fleet with tags: the SDK-style list and its expands answer within bounds', async () => {
      const { a, b } = t;
      const db = t.server.app.flotilla.db;
      const seeded = await seedDevices(db, a.fleetId, 5000);
      const ids = await db.selectFrom('devices').select('id').where('fleet_id', '=', a.fleetId).execute();
      for (let i = 0; i < ids.length; i += 500)
        await db
          .insertInto('device_tags')
          .values(ids.slice(i, i + 500).map((d) => ({ device_id: d.id, key: 'rack', value: String(d.id % 7) })))
          .execute();
      const filter = q(`belongs_to__application/any(bta:bta/organization/any(o:o/handle eq '${a.org}'))`);
      const expand = q(
        'device_tag($select=tag_key,value),is_of__device_type($select=slug),belongs_to__application($select=slug)',
      );
      const started = performance.now();
      const res = await t.call('GET', `/v7/device?$filter=${filter}&$expand=${expand}&$orderby=device_name asc`, {
        key: a.apiKey,
      });
      const ms = performance.now() - started;
      assert.equal(res.status, 200, res.text.slice(0, 300));
      assert.equal(res.data.d.length, seeded.length + 1);
      assert.ok(
        res.data.d.every((d: { id: number; device_tag: { tag_key: string; value: string }[] }) =>
          d.device_tag.some((tag) => tag.tag_key === 'rack' && tag.value === String(d.id % 7)),
        ),
      );
      assert.ok(!res.text.includes(b.uuid));
      console.log(`odata: ${res.data.d.length} devices with 3 expands in ${ms.toFixed(0)} ms (${testDb.label})`);
      // Measured 270–770 ms alone, 11 s once at load 13 on 2 cores: a loose bound against a pathological plan only.
      assert.ok(ms < 30_000, `${ms} ms`);
      await db.deleteFrom('device_tags').where('key', '=', 'rack').execute();
      await db.deleteFrom('devices').where('name', 'like', 'device-%').execute();
    });

    test('an observer reads the organization but changes nothing through /v7/', async () => {
      const { a, b } = t;
      const invite = await t.call('POST', `/api/v1/organizations/${a.org}/invitations`, {
        key: a.token,
        body: { username: b.username, role: 'observer' },
      });
      assert.equal(invite.status, 202, invite.text);
      const pending = await t.call('GET', '/api/v1/invitations', { key: b.token });
      const id = pending.data.items.find(
        (i: { organization: { handle: string } }) => i.organization.handle === a.org,
      )?.id;
      assert.equal((await t.call('POST', `/api/v1/invitations/${id}/accept`, { key: b.token })).status, 200);
      const seen = await t.call('GET', `/v7/device(uuid='${a.uuid}')?$select=id`, { key: b.apiKey });
      assert.deepEqual(seen.data.d, [{ id: a.deviceId }]);
      const rename = await t.call('PATCH', `/v7/device(${a.deviceId})`, { key: b.apiKey, body: { device_name: 'x' } });
      assert.equal(rename.status, 200);
      const device = await t.call('GET', `/v7/device(${a.deviceId})?$select=device_name`, { key: a.apiKey });
      assert.notEqual(device.data.d[0].device_name, 'x');
      const create = await t.call('POST', '/v7/device_environment_variable', {
        key: b.apiKey,
        body: { device: a.deviceId, name: 'OBSERVED', value: '1' },
      });
      assert.equal(create.status, 404, create.text);
    });
  });
}
