import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError, type DeviceLogLine, type TargetDevice } from '@flotilla/protocol';
import type { AppStateInfo, DeviceActions, ServiceAction } from './device-actions.js';
import { buildDeviceApi } from './server.js';

const KEY = 'local-api-key-0123456789abcdef';

/** A small in-memory device: one app with one service, an update lock flag, local mode per development flag. */
function device(dev: boolean) {
  const calls: string[] = [];
  const listeners = new Set<(l: DeviceLogLine) => void>();
  let locked = false;
  let hostname = 'snowy-pine';
  let local: TargetDevice | undefined;
  const guard = (force: boolean) => {
    if (locked && !force) throw new FlotillaError('UPDATE_LOCKED', 'updates.lock is held by a service of app 1');
  };
  const apps: AppStateInfo[] = [
    {
      appId: 1,
      appUuid: 'u1',
      name: 'myfleet',
      commit: 'abc1234',
      services: [
        {
          serviceName: 'main',
          serviceId: 11,
          appId: 1,
          imageId: 22,
          releaseId: 2,
          commit: 'abc1234',
          containerId: 'c1',
          status: 'Running',
          createdAt: null,
          downloadProgress: null,
        },
      ],
    },
  ];
  const actions: DeviceActions = {
    version: '0.1.0',
    developmentMode: () => dev,
    healthy: () => true,
    device: () => ({
      uuid: 'a'.repeat(32),
      apiPort: 48484,
      ipAddress: '10.0.0.2',
      macAddress: null,
      osVersion: 'Debian 12',
      agentVersion: '0.1.0',
      status: 'Idle',
      updatePending: false,
      updateDownloaded: false,
      updateFailed: false,
      downloadProgress: null,
      commit: 'abc1234',
    }),
    apps: () => apps,
    applying: () => false,
    triggerUpdate: (force) => void calls.push(`update force=${force}`),
    restartApp: async (appId, force) => {
      guard(force);
      calls.push(`restart ${appId}`);
    },
    purgeApp: async (appId, force) => {
      guard(force);
      calls.push(`purge ${appId}`);
    },
    serviceAction: async (action: ServiceAction, appId, service, force) => {
      guard(force);
      calls.push(`${action} ${appId}/${service}`);
    },
    reboot: async (force) => {
      guard(force);
      calls.push('reboot');
    },
    shutdown: async (force) => {
      guard(force);
      calls.push('shutdown');
    },
    identify: async () => void calls.push('identify'),
    hostname: () => hostname,
    setHostname: async (h) => {
      hostname = h;
    },
    localTarget: () => local,
    setLocalTarget: (d) => {
      local = d;
    },
    subscribeLogs: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return { api: buildDeviceApi({ actions, apiKey: KEY }), calls, lock: (v: boolean) => (locked = v) };
}

const auth = { authorization: `Bearer ${KEY}` };

test('ping and healthy are open; everything else needs the key (header or ?apikey=)', async () => {
  const { api } = device(false);
  assert.equal((await api.inject({ method: 'GET', url: '/ping' })).body, 'OK');
  assert.equal((await api.inject({ method: 'GET', url: '/v1/healthy' })).statusCode, 200);
  const denied = await api.inject({ method: 'GET', url: '/v1/device' });
  assert.equal(denied.statusCode, 401);
  assert.equal(denied.json().error.code, 'UNAUTHENTICATED');
  assert.equal(
    (await api.inject({ method: 'GET', url: '/v1/device', headers: { authorization: 'Bearer wrong' } })).statusCode,
    401,
  );
  assert.equal(
    (await api.inject({ method: 'GET', url: `/v1/device?apikey=${KEY}` })).json().supervisor_version,
    '0.1.0',
  );
});

test('an update lock answers 423 and does nothing, unless forced', async () => {
  const { api, calls, lock } = device(false);
  lock(true);
  const blocked = await api.inject({ method: 'POST', url: '/v1/restart', headers: auth, payload: { appId: 1 } });
  assert.equal(blocked.statusCode, 423);
  assert.equal(blocked.json().error.code, 'UPDATE_LOCKED');
  assert.equal(
    (
      await api.inject({
        method: 'POST',
        url: '/v2/applications/1/restart-service',
        headers: auth,
        payload: { serviceName: 'main' },
      })
    ).statusCode,
    423,
  );
  assert.deepEqual(calls, []);
  assert.equal(
    (await api.inject({ method: 'POST', url: '/v1/restart', headers: auth, payload: { appId: 1, force: true } }))
      .statusCode,
    200,
  );
  assert.equal(
    (
      await api.inject({
        method: 'POST',
        url: '/v2/applications/1/stop-service',
        headers: auth,
        payload: { imageId: 22, force: true },
      })
    ).statusCode,
    200,
  );
  assert.deepEqual(calls, ['restart 1', 'stop 1/main']);
});

test('bad input is a 400 with a code, never a 500', async () => {
  const { api } = device(true);
  for (const [url, payload] of [
    ['/v1/restart', { appId: 'x' }],
    ['/v1/purge', {}],
    ['/v2/applications/0/restart', {}],
    ['/v2/applications/1/start-service', { serviceName: '../etc' }],
    ['/v2/local/target-state', { local: { apps: 'nope' } }],
  ] as const) {
    const res = await api.inject({ method: 'POST', url, headers: auth, payload });
    assert.equal(res.statusCode, 400, `${url} ${JSON.stringify(payload)} → ${res.body}`);
    assert.equal(res.json().error.code, 'VALIDATION_FAILED');
  }
  const broken = await api.inject({
    method: 'POST',
    url: '/v1/update',
    headers: { ...auth, 'content-type': 'application/json' },
    payload: '{"force":',
  });
  assert.equal(broken.statusCode, 400);
});

test('local mode: refused on production devices, open without a key on development ones', async () => {
  const prod = device(false);
  const refused = await prod.api.inject({
    method: 'POST',
    url: '/v2/local/target-state',
    headers: auth,
    payload: { local: { name: 'x', apps: {} } },
  });
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.json().error.code, 'LOCAL_MODE_DISABLED');
  assert.equal((await prod.api.inject({ method: 'GET', url: '/v2/local/target-state' })).statusCode, 401);

  const dev = device(true);
  const set = await dev.api.inject({
    method: 'POST',
    url: '/v2/local/target-state',
    payload: { local: { name: 'dev-box', config: {}, apps: {} } },
  });
  assert.equal(set.statusCode, 200);
  assert.equal(
    (await dev.api.inject({ method: 'GET', url: '/v2/local/target-state' })).json().state.local.name,
    'dev-box',
  );
});

test('v1 and v2 state endpoints report what the device runs', async () => {
  const { api, calls } = device(false);
  const status = (await api.inject({ method: 'GET', url: '/v2/state/status', headers: auth })).json();
  assert.equal(status.appState, 'applied');
  assert.equal(status.containers[0].serviceName, 'main');
  assert.equal(
    (await api.inject({ method: 'GET', url: '/v2/applications/state', headers: auth })).json().myfleet.services.main
      .status,
    'Running',
  );
  assert.equal((await api.inject({ method: 'GET', url: '/v2/version', headers: auth })).json().version, '0.1.0');
  const host = await api.inject({
    method: 'PATCH',
    url: '/v1/device/host-config',
    headers: auth,
    payload: { network: { hostname: 'new-name' } },
  });
  assert.equal(host.json().network.hostname, 'new-name');
  assert.equal(
    (await api.inject({ method: 'POST', url: '/v1/update', headers: auth, payload: { force: true } })).statusCode,
    204,
  );
  assert.equal((await api.inject({ method: 'POST', url: '/v1/blink', headers: auth })).statusCode, 200);
  assert.deepEqual(calls, ['update force=true', 'identify']);
});
