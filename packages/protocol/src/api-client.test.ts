import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createApiClient } from './api-client.js';
import type { FetchLike } from './api-client.js';
import { FlotillaError } from './errors.js';
import { USER_ROUTES } from './user-routes.js';

/** A fetch that records each request and answers with `status` and `body`. */
function fakeFetch(status: number, body: unknown, seen: { url: string; method: string; body: string | null }[] = []) {
  const fetch: FetchLike = async (url, init) => {
    seen.push({ url, method: init.method, body: init.body });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return { ok: status >= 200 && status < 300, status, text: async () => text, body: null };
  };
  return fetch;
}

const fleet = {
  id: 1,
  uuid: 'u',
  name: 'Kitchen',
  slug: 'kitchen',
  deviceType: 'generic-amd64',
  organization: 'default',
  targetRelease: null,
  pinnedRelease: null,
  createdAt: '2026-01-01T00:00:00.000Z',
};

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof FlotillaError, `not a FlotillaError: ${String(error)}`);
    return error.code;
  }
  assert.fail('did not fail');
}

test('a call fills the path and query, sends the body, and returns the validated answer', async () => {
  const seen: { url: string; method: string; body: string | null }[] = [];
  const client = createApiClient({ baseUrl: 'http://h:1/', token: 't', fetch: fakeFetch(200, fleet, seen) });
  // A server from before maintenance windows, rollouts and fleet OS targets sends no updateWindow, rollout,
  // targetOs or osRollout: the schema's defaults (none) fill them in.
  assert.deepEqual(await client.call(USER_ROUTES.getFleet, { params: { slug: 'kitchen' } }), {
    ...fleet,
    updateWindow: null,
    rollout: null,
    targetOs: null,
    osRollout: null,
  });
  await client.call(USER_ROUTES.updateFleet, { params: { slug: 'a b' }, body: { name: 'x' } });
  await client.call(USER_ROUTES.deleteDeviceEnv, { params: { uuid: 'abcdef0', name: 'N' }, query: { service: 'web' } });
  assert.deepEqual(seen, [
    { url: 'http://h:1/api/v1/fleets/kitchen', method: 'GET', body: null },
    { url: 'http://h:1/api/v1/fleets/a%20b', method: 'PATCH', body: '{"name":"x"}' },
    { url: 'http://h:1/api/v1/devices/abcdef0/env/N?service=web', method: 'DELETE', body: null },
  ]);
});

test('an answer that does not match the protocol is UNEXPECTED_RESPONSE, naming the field', async () => {
  const wrong = createApiClient({ baseUrl: 'http://h', fetch: fakeFetch(200, { ...fleet, slug: 42 }) });
  const error = await wrong.call(USER_ROUTES.getFleet, { params: { slug: 'kitchen' } }).catch((e: unknown) => e);
  assert.ok(error instanceof FlotillaError);
  assert.equal(error.code, 'UNEXPECTED_RESPONSE');
  assert.match(error.message, /slug/);
  const notJson = createApiClient({ baseUrl: 'http://h', fetch: fakeFetch(200, '<html>') });
  assert.equal(await codeOf(notJson.call(USER_ROUTES.listFleets)), 'UNEXPECTED_RESPONSE');
});

test('error answers keep the server code; other failures get stable codes', async () => {
  const body = { error: { code: 'FLEET_NOT_FOUND', message: 'no fleet' } };
  const notFound = createApiClient({ baseUrl: 'http://h', fetch: fakeFetch(404, body) });
  assert.equal(await codeOf(notFound.call(USER_ROUTES.getFleet, { params: { slug: 'x' } })), 'FLEET_NOT_FOUND');
  const proxy = createApiClient({ baseUrl: 'http://h', fetch: fakeFetch(502, 'bad gateway') });
  assert.equal(await codeOf(proxy.call(USER_ROUTES.listFleets)), 'INTERNAL');
  const down = createApiClient({
    baseUrl: 'http://h',
    fetch: async () => {
      throw new TypeError('fetch failed', { cause: new Error('ECONNREFUSED') });
    },
  });
  assert.equal(await codeOf(down.call(USER_ROUTES.listFleets)), 'NETWORK_ERROR');
});

test('a route without an answer body resolves to undefined', async () => {
  const client = createApiClient({ baseUrl: 'http://h', fetch: fakeFetch(204, '') });
  assert.equal(await client.call(USER_ROUTES.deleteFleet, { params: { slug: 'kitchen' } }), undefined);
});
