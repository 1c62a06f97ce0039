import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CSRF_HEADER, FlotillaError, USER_ROUTES } from '@flotilla/protocol';
import { type BrowserFetch, createDashboardApi, describeError } from './dashboard-api.js';

interface Seen {
  url: string;
  init: RequestInit;
}

function server(status: number, body: unknown, seen: Seen[]): BrowserFetch {
  return async (url, init) => {
    seen.push({ url, init });
    const text = JSON.stringify(body);
    return { ok: status >= 200 && status < 300, status, text: async () => text, body: null };
  };
}

const fleet = {
  id: 1,
  uuid: 'u',
  name: '<img src=x onerror=alert(1)>',
  slug: 'kitchen',
  deviceType: 'generic-amd64',
  organization: 'default',
  targetRelease: null,
  pinnedRelease: null,
  createdAt: '2026-01-01T00:00:00.000Z',
};

test('writes carry the CSRF token and the cookie; reads carry the cookie only', async () => {
  const seen: Seen[] = [];
  const api = createDashboardApi({
    baseUrl: 'https://flotilla.test',
    fetch: server(200, fleet, seen),
    onUnauthenticated: () => assert.fail('not expired'),
  });
  api.setCsrfToken('t0ken');
  await api.call(USER_ROUTES.getFleet, { params: { slug: 'kitchen' } });
  await api.call(USER_ROUTES.updateFleet, { params: { slug: 'kitchen' }, body: { name: 'Kitchen' } });
  const [read, write] = seen as [Seen, Seen];
  assert.equal(read.url, 'https://flotilla.test/api/v1/fleets/kitchen');
  assert.equal(read.init.credentials, 'same-origin');
  assert.equal((read.init.headers as Record<string, string>)[CSRF_HEADER], undefined);
  assert.equal(write.init.method, 'PATCH');
  assert.equal(write.init.credentials, 'same-origin');
  assert.equal((write.init.headers as Record<string, string>)[CSRF_HEADER], 't0ken');
  assert.equal((write.init.headers as Record<string, string>).authorization, undefined, 'no bearer token');

  api.setCsrfToken(null);
  await api.call(USER_ROUTES.updateFleet, { params: { slug: 'kitchen' }, body: { name: 'Kitchen' } });
  assert.equal((seen[2]!.init.headers as Record<string, string>)[CSRF_HEADER], undefined);
});

test('an expired session is reported once per failing call, and the error still reaches the caller', async () => {
  let expired = 0;
  const api = createDashboardApi({
    baseUrl: 'https://flotilla.test',
    fetch: server(401, { error: { code: 'UNAUTHENTICATED', message: 'sign in' } }, []),
    onUnauthenticated: () => expired++,
  });
  await assert.rejects(api.call(USER_ROUTES.whoami), (error) => error instanceof FlotillaError);
  assert.equal(expired, 1);
});

test('a wrong password is an error to show, not an expired session', async () => {
  const api = createDashboardApi({
    baseUrl: 'https://flotilla.test',
    fetch: server(401, { error: { code: 'INVALID_CREDENTIALS', message: 'wrong username or password' } }, []),
    onUnauthenticated: () => assert.fail('a failed sign-in is not an expiry'),
  });
  const error = await api
    .call(USER_ROUTES.browserLogin, { body: { username: 'a', password: 'b' } })
    .catch((e: unknown) => e);
  assert.equal(describeError(error), 'wrong username or password (INVALID_CREDENTIALS)');
});
