import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type BrowserFetch, createDashboardApi } from '../api/dashboard-api.js';
import { variableCalls } from './variable-calls.js';

const envVar = { id: 1, name: 'A', value: 'v', service: null, createdAt: '2026-01-01T00:00:00.000Z' };

function recorder() {
  const seen: string[] = [];
  const fetch: BrowserFetch = async (url, init) => {
    const { pathname, search } = new URL(url);
    seen.push(`${init.method} ${pathname}${search} ${init.body ?? ''}`.trim());
    const text = init.method === 'DELETE' ? '' : JSON.stringify(init.method === 'GET' ? { items: [envVar] } : envVar);
    return { ok: true, status: init.method === 'DELETE' ? 204 : 200, text: async () => text, body: null };
  };
  const api = createDashboardApi({ baseUrl: 'https://f.test', fetch, onUnauthenticated: () => undefined });
  return { api, seen };
}

test('a delete removes exactly one variable: one service, or only the all-services one', async () => {
  const { api, seen } = recorder();
  const fleet = variableCalls(api, { fleet: 'kitchen' }, 'env');
  await fleet.remove('GREETING', null);
  await fleet.remove('GREETING', 'web');
  const device = variableCalls(api, { device: 'abcdef0' }, 'env');
  await device.remove('GREETING', null);
  await variableCalls(api, { device: 'abcdef0' }, 'config').remove('FLOTILLA_X', null);
  assert.deepEqual(seen, [
    'DELETE /api/v1/fleets/kitchen/env/GREETING?exact=1',
    'DELETE /api/v1/fleets/kitchen/env/GREETING?service=web',
    'DELETE /api/v1/devices/abcdef0/env/GREETING?exact=1',
    'DELETE /api/v1/devices/abcdef0/config/FLOTILLA_X',
  ]);
});

test('sets and lists go to the owner and kind asked for; config never sends a service', async () => {
  const { api, seen } = recorder();
  assert.deepEqual(await variableCalls(api, { fleet: 'kitchen' }, 'config').list(), [envVar]);
  await variableCalls(api, { fleet: 'kitchen' }, 'env').set({ name: 'A', value: 'v', service: '' });
  await variableCalls(api, { device: 'abcdef0' }, 'env').set({ name: 'A', value: 'v', service: 'web' });
  await variableCalls(api, { device: 'abcdef0' }, 'config').set({ name: 'BALENA_X', value: '1', service: 'web' });
  assert.deepEqual(seen, [
    'GET /api/v1/fleets/kitchen/config',
    'POST /api/v1/fleets/kitchen/env {"name":"A","value":"v"}',
    'POST /api/v1/devices/abcdef0/env {"name":"A","value":"v","service":"web"}',
    'POST /api/v1/devices/abcdef0/config {"name":"BALENA_X","value":"1"}',
  ]);
});
