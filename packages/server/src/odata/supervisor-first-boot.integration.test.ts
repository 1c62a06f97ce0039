import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODE_HEADER, generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { getRegisterDevice } from 'balena-register-device';
import { getSdk } from 'balena-sdk';
import { type TwoTenants, twoTenants } from '../testing/tenants.js';

const q = (s: string) => encodeURIComponent(s);

/**
 * The calls a real balena Supervisor (v14–v19) makes on first boot, replayed with its device key as it sends them
 * (pinejs-client's URLs and bodies), against a live server; tenant B's device is the one it must never reach.
 */
for (const testDb of testDatabases()) {
  describe(`OData: the Supervisor's first-boot calls (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('balena-register-device registers a device whose key then reads its own record through /v7/', async () => {
      const { a } = t;
      const { register } = getRegisterDevice({ request: getSdk({ apiUrl: t.url, dataDirectory: false }).request });
      const uuid = generateDeviceUuid();
      const deviceApiKey = generateKey();
      const registered = await register({
        applicationId: a.fleetId,
        uuid,
        deviceType: 'raspberrypi4-64',
        provisioningApiKey: a.provisioningKey,
        deviceApiKey,
        apiEndpoint: t.url,
        supervisorVersion: '17.1.0',
        osVersion: 'balenaOS 6.1.0',
      });
      assert.equal(registered.uuid, uuid);
      const own = await t.call(
        'GET',
        `/v7/device?$filter=${q(`uuid eq '${uuid}'`)}&$select=id,uuid&$expand=is_of__device_type($select=slug)`,
        {
          key: deviceApiKey,
        },
      );
      assert.equal(own.status, 200, own.text);
      assert.deepEqual(own.data.d, [{ id: registered.id, uuid, is_of__device_type: [{ slug: 'raspberrypi4-64' }] }]);
      // Refusals reach the Supervisor's log as the error's message, made of the answer's body: it must be text that
      // says why (a JSON body printed as `Request error: [object Object]`).
      const refused = (status: number, code: RegExp) => (error: Error & { statusCode?: number }) => {
        assert.equal(error.statusCode, status);
        assert.match(error.message, code);
        assert.doesNotMatch(error.message, /object Object/);
        return true;
      };
      await assert.rejects(
        register({
          applicationId: a.fleetId,
          uuid,
          deviceType: 'raspberrypi4-64',
          provisioningApiKey: 'x'.repeat(32),
          apiEndpoint: t.url,
        }),
        refused(401, /^Request error: \w.* \(UNAUTHENTICATED\)$/),
      );
      await assert.rejects(
        register({
          applicationId: a.fleetId,
          uuid,
          deviceType: 'raspberrypi4-64',
          provisioningApiKey: a.provisioningKey,
          deviceApiKey: generateKey(),
          apiEndpoint: t.url,
        }),
        refused(409, /^Request error: \w.* \([A-Z_]+\)$/),
      );
    });

    test('registration recovery: GET /v6/device and /v7/device by uuid, own device only', async () => {
      const { a, b } = t;
      const own = await t.call('GET', `/v6/device?$filter=${q(`uuid eq '${a.uuid}'`)}`, { key: a.deviceKey });
      assert.equal(own.status, 200, own.text);
      assert.equal(own.data.d.length, 1);
      assert.equal(own.data.d[0].id, a.deviceId);
      assert.equal(own.data.d[0].uuid, a.uuid);
      assert.deepEqual(own.data.d[0].belongs_to__application, { __id: a.fleetId });
      const other = await t.call('GET', `/v7/device?$filter=${q(`uuid eq '${b.uuid}'`)}`, { key: a.deviceKey });
      assert.deepEqual(other.data, { d: [] });
      const bad = await t.call('GET', `/v7/device?$filter=${q(`uuid eq '${a.uuid}'`)}`, { key: 'x'.repeat(32) });
      assert.equal(bad.status, 401);
      // A provisioning key still gets the id of a device of its own fleet (balena-register-device).
      const prov = await t.call('GET', `/v7/device?$select=id&$filter=${q(`uuid eq '${a.uuid}'`)}`, {
        key: a.provisioningKey,
      });
      assert.deepEqual(prov.data, { d: [{ id: a.deviceId }] });
    });

    test('reportInitialEnv: POST /v7/device_config_variable keeps names exactly; GET, PATCH; never another device', async () => {
      const { a, b } = t;
      const names = ['RESIN_HOST_CONFIG_gpu_mem', 'BALENA_HOST_CONFIG_dtoverlay', 'RESIN_SUPERVISOR_VPN_CONTROL'];
      const ids: number[] = [];
      for (const name of names) {
        const res = await t.call('POST', '/v7/device_config_variable', {
          key: a.deviceKey,
          body: { value: 'vc4-kms-v3d', device: a.deviceId, name },
        });
        assert.equal(res.status, 201, res.text);
        assert.equal(res.data.name, name);
        assert.equal(res.data.value, 'vc4-kms-v3d');
        assert.deepEqual(res.data.device, { __id: a.deviceId });
        ids.push(res.data.id);
      }
      // A second POST of a name is a conflict, as on balena (the value stays).
      const again = await t.call('POST', '/v7/device_config_variable', {
        key: a.deviceKey,
        body: { value: 'other', device: a.deviceId, name: names[0] },
      });
      assert.equal(again.status, 409, again.text);
      assert.equal(again.headers.get(ERROR_CODE_HEADER), 'CONFLICT');
      assert.match(again.text, /unique/);
      // The user API shows the same variables, names as posted.
      const shown = await t.call('GET', `/api/v1/devices/${a.uuid}/config`, { key: a.token });
      assert.deepEqual(
        shown.data.items.map((v: { name: string }) => v.name).filter((n: string) => names.includes(n)),
        names,
      );
      const patched = await t.call('PATCH', `/v7/device_config_variable(${ids[0]})`, {
        key: a.deviceKey,
        body: { value: '64' },
      });
      assert.equal(patched.status, 200, patched.text);
      const listed = await t.call(
        'GET',
        `/v7/device_config_variable?$filter=${q(`device eq ${a.deviceId} and name in ('${names.join("','")}')`)}&$orderby=name asc&$select=name,value`,
        { key: a.deviceKey },
      );
      assert.deepEqual(listed.data.d, [
        { name: 'BALENA_HOST_CONFIG_dtoverlay', value: 'vc4-kms-v3d' },
        { name: 'RESIN_HOST_CONFIG_gpu_mem', value: '64' },
        { name: 'RESIN_SUPERVISOR_VPN_CONTROL', value: 'vc4-kms-v3d' },
      ]);
      // Device A's key cannot write B's device, nor read or change B's variables.
      const foreign = await t.call('POST', '/v7/device_config_variable', {
        key: a.deviceKey,
        body: { value: '1', device: b.deviceId, name: 'RESIN_HOST_CONFIG_gpu_mem' },
      });
      assert.equal(foreign.status, 404, foreign.text);
      assert.equal(foreign.headers.get(ERROR_CODE_HEADER), 'DEVICE_NOT_FOUND');
      const bVars = await t.call('GET', `/api/v1/devices/${b.uuid}/config`, { key: b.token });
      const bNames = bVars.data.items.map((v: { name: string }) => v.name);
      assert.ok(!bNames.includes('RESIN_HOST_CONFIG_gpu_mem'), JSON.stringify(bNames));
      const peek = await t.call('GET', `/v7/device_config_variable?$filter=${q(`device eq ${b.deviceId}`)}`, {
        key: a.deviceKey,
      });
      assert.deepEqual(peek.data, { d: [] });
      // A device key writes only its own config variables: not its environment, nor its fleet's variables.
      for (const [resource, body] of [
        ['device_environment_variable', { device: a.deviceId, name: 'X', value: '1' }],
        ['application_config_variable', { application: a.fleetId, name: 'RESIN_X', value: '1' }],
        ['application_environment_variable', { application: a.fleetId, name: 'X', value: '1' }],
      ] as const) {
        const refused = await t.call('POST', `/v7/${resource}`, { key: a.deviceKey, body });
        assert.equal(refused.status, 403, `${resource}: ${refused.text}`);
      }
      const fleetVar = await t.call(
        'GET',
        `/v7/application_environment_variable?$filter=${q(`name eq '${a.envName}'`)}`,
        {
          key: a.deviceKey,
        },
      );
      assert.equal(fleetVar.data.d.length, 1, fleetVar.text);
      await t.call('PATCH', `/v7/application_environment_variable(${fleetVar.data.d[0].id})`, {
        key: a.deviceKey,
        body: { value: 'changed by a device' },
      });
      await t.call('DELETE', `/v7/application_environment_variable(${fleetVar.data.d[0].id})`, { key: a.deviceKey });
      const still = await t.call('GET', `/v7/application_environment_variable(${fleetVar.data.d[0].id})`, {
        key: a.apiKey,
      });
      assert.equal(still.data.d[0].value, fleetVar.data.d[0].value);
      const bad = await t.call('POST', '/v7/device_config_variable', {
        key: a.deviceKey,
        body: { value: '1', device: a.deviceId, name: 'gpu_mem' },
      });
      assert.equal(bad.status, 400);
      assert.equal(bad.headers.get(ERROR_CODE_HEADER), 'VALIDATION_FAILED');
    });

    test('pinDevice: GET /v7/release by fleet, commit and status, then PATCH /v7/device(id)', async () => {
      const { a, b } = t;
      const filter = `(belongs_to__application eq ${a.fleetId}) and (commit eq '${a.releaseCommit}') and (status eq 'success')`;
      const found = await t.call('GET', `/v7/release?$filter=${q(filter)}&$select=id`, { key: a.deviceKey });
      assert.equal(found.status, 200, found.text);
      assert.deepEqual(found.data, { d: [{ id: a.releaseId }] });
      const foreign = `belongs_to__application eq ${b.fleetId} and commit eq '${b.releaseCommit}'`;
      assert.deepEqual((await t.call('GET', `/v7/release?$filter=${q(foreign)}`, { key: a.deviceKey })).data, {
        d: [],
      });

      const pin = await t.call('PATCH', `/v7/device(${a.deviceId})`, {
        key: a.deviceKey,
        body: { should_be_running__release: a.releaseId },
      });
      assert.equal(pin.status, 200, pin.text);
      assert.equal(pin.text, 'OK');
      let device = await t.call('GET', `/api/v1/devices/${a.uuid}`, { key: a.token });
      assert.equal(device.data.pinnedRelease, a.releaseCommit);
      await t.call('PATCH', `/v7/device(${a.deviceId})`, { key: a.deviceKey, body: { is_pinned_on__release: null } });
      device = await t.call('GET', `/api/v1/devices/${a.uuid}`, { key: a.token });
      assert.equal(device.data.pinnedRelease, null);
      const named = await t.call('PATCH', `/v7/device(${a.deviceId})`, {
        key: a.deviceKey,
        body: {
          device_name: 'first-boot',
          os_version: 'balenaOS 6.0.0',
          os_variant: 'prod',
          supervisor_version: '17.0.0',
        },
      });
      assert.equal(named.status, 200, named.text);
      const odata = await t.call('GET', `/v7/device(${a.deviceId})?$select=device_name,os_version,supervisor_version`, {
        key: a.deviceKey,
      });
      assert.deepEqual(odata.data.d, [
        { device_name: 'first-boot', os_version: 'balenaOS 6.0.0', supervisor_version: '17.0.0' },
      ]);

      // Another fleet's release, and another device: refused or untouched.
      const wrong = await t.call('PATCH', `/v7/device(${a.deviceId})`, {
        key: a.deviceKey,
        body: { should_be_running__release: b.releaseId },
      });
      assert.equal(wrong.status, 404, wrong.text);
      assert.equal(wrong.headers.get(ERROR_CODE_HEADER), 'RELEASE_NOT_FOUND');
      await t.call('PATCH', `/v7/device(${b.deviceId})`, { key: a.deviceKey, body: { device_name: 'taken' } });
      const bDevice = await t.call('GET', `/api/v1/devices/${b.uuid}`, { key: b.token });
      assert.equal(bDevice.data.name, b.deviceName);
      const unknown = await t.call('PATCH', `/v7/device(${a.deviceId})`, {
        key: a.deviceKey,
        body: { is_web_accessible: true },
      });
      assert.equal(unknown.status, 400);
    });

    test('device_tag: POST, GET, PATCH and DELETE by $filter', async () => {
      const { a, b } = t;
      const created = await t.call('POST', '/v7/device_tag', {
        key: a.deviceKey,
        body: { device: a.deviceId, tag_key: 'rack', value: 'r1' },
      });
      assert.equal(created.status, 201, created.text);
      assert.equal(typeof created.data.id, 'number', 'a tag has an id (the Supervisor selects it)');
      assert.deepEqual(created.data, {
        id: created.data.id,
        device: { __id: a.deviceId },
        tag_key: 'rack',
        value: 'r1',
      });
      const dup = await t.call('POST', '/v7/device_tag', {
        key: a.deviceKey,
        body: { device: a.deviceId, tag_key: 'rack', value: 'r9' },
      });
      assert.equal(dup.status, 409, dup.text);
      const filter = q(`device eq ${a.deviceId} and tag_key eq 'rack'`);
      assert.equal(
        (await t.call('PATCH', `/v7/device_tag?$filter=${filter}`, { key: a.token, body: { value: 'r2' } })).status,
        200,
      );
      const listed = await t.call(
        'GET',
        `/v7/device_tag?$filter=${q(`device eq ${a.deviceId}`)}&$orderby=tag_key asc`,
        {
          key: a.apiKey,
        },
      );
      assert.deepEqual(
        listed.data.d.filter((x: { tag_key: string }) => x.tag_key === 'rack'),
        [{ id: created.data.id, device: { __id: a.deviceId }, tag_key: 'rack', value: 'r2' }],
      );
      assert.equal((await t.call('DELETE', `/v7/device_tag?$filter=${filter}`, { key: a.deviceKey })).status, 200);
      const gone = await t.call('GET', `/v7/device_tag?$filter=${filter}`, { key: a.deviceKey });
      assert.deepEqual(gone.data, { d: [] });
      // A's user key deletes nothing of B's.
      const bFilter = q(`device eq ${b.deviceId}`);
      const before = await t.call('GET', `/v7/device_tag?$filter=${bFilter}`, { key: b.apiKey });
      assert.ok(before.data.d.length > 0);
      await t.call('DELETE', `/v7/device_tag?$filter=${bFilter}`, { key: a.apiKey });
      assert.deepEqual((await t.call('GET', `/v7/device_tag?$filter=${bFilter}`, { key: b.apiKey })).data, before.data);
    });
  });
}
