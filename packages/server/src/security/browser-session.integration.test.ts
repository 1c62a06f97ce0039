import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CSRF_HEADER, SESSION_COOKIE } from '@flotilla/protocol';
import { testDatabases, waitFor } from '@flotilla/testkit';
import WebSocket from 'ws';
import { AttackTally } from '../testing/attacks.js';
import { readEventStream } from '../testing/clients.js';
import { harness, type Harness } from '../testing/harness.js';
import { liveServerWithDevice, type LiveDevice } from '../testing/live-server.js';
import { httpCall, type HttpAnswer } from '../testing/tenants.js';

interface BrowserSession {
  cookie: string;
  csrf: string;
  setCookie: string;
}

/** Signs in as the dashboard does; the cookie as a browser would send it back. */
async function signIn(url: string, username: string, password: string): Promise<BrowserSession> {
  const res = await httpCall(url, 'POST', '/api/v1/auth/browser-session', { body: { username, password } });
  assert.equal(res.status, 200, res.text);
  const setCookie = res.headers.get('set-cookie') ?? '';
  const token = new RegExp(`^${SESSION_COOKIE}=([^;]+)`).exec(setCookie)?.[1];
  assert.ok(token, `no session cookie in ${setCookie}`);
  assert.equal(typeof res.data.csrfToken, 'string');
  assert.ok(!res.text.includes(token), 'the answer body never carries the session token');
  return { cookie: `${SESSION_COOKIE}=${token}`, csrf: res.data.csrfToken, setCookie };
}

/** Opens a WebSocket to a user stream route with the cookie (and an Origin); the HTTP status of the refusal, or 101. */
function upgradeStatus(url: string, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}${path}`, { headers });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.on('open', () => {
      resolve(101);
      socket.terminate();
    });
    socket.on('error', (error) => reject(error));
  });
}

const refusedWith = (res: HttpAnswer, status: number, code: string) =>
  res.status === status && res.data?.error?.code === code;

for (const testDb of testDatabases()) {
  describe(`security: the dashboard's cookie session (${testDb.label})`, () => {
    let live: LiveDevice;
    let session: BrowserSession;
    let url: string;
    before(async () => {
      live = await liveServerWithDevice(testDb);
      url = live.server.url;
      const admin = live.server.admin!;
      session = await signIn(url, admin.username, admin.password);
    });
    after(() => live.close());

    test('the cookie is HttpOnly, SameSite=Strict, Path=/, lasts as long as the session, not Secure over HTTP', () => {
      const attributes = session.setCookie.split(';').map((a) => a.trim().toLowerCase());
      for (const wanted of ['httponly', 'samesite=strict', 'path=/'])
        assert.ok(attributes.includes(wanted), session.setCookie);
      assert.ok(!attributes.includes('secure'), 'plain HTTP: a Secure cookie would never come back');
      const maxAge = Number(attributes.find((a) => a.startsWith('max-age='))?.slice(8));
      assert.ok(Math.abs(maxAge - 7 * 24 * 3600) < 5, `max-age ${maxAge}`);
    });

    test('CSRF: cookie writes without the header or with a wrong one are refused; bearer writes need none', async () => {
      const tally = new AttackTally('browser-session csrf');
      const cookie = { cookie: session.cookie };
      const writes: [string, string, unknown][] = [
        ['POST', '/api/v1/fleets', { name: 'csrf-made', slug: `csrf-${testDb.label}` }],
        ['PATCH', `/api/v1/devices/${live.uuid}`, { name: 'csrf-renamed' }],
        ['POST', `/api/v1/devices/${live.uuid}/tags`, { key: 'csrf', value: 'x' }],
        ['DELETE', `/api/v1/devices/${live.uuid}/env/NOPE`, undefined],
        ['POST', '/api/v1/api-keys', { name: 'csrf-key' }],
        ['POST', '/api/v1/auth/logout', undefined],
        ['DELETE', `/api/v1/devices/${live.uuid}`, undefined],
      ];
      // One character off (never the token itself, whatever its last character), and the same letters upper-cased.
      const oneOff = `${session.csrf.slice(0, -1)}${session.csrf.endsWith('0') ? '1' : '0'}`;
      const wrongs = [undefined, '', 'nope', oneOff, session.csrf.toUpperCase()];
      for (const [method, path, body] of writes) {
        for (const wrong of wrongs) {
          const headers = wrong === undefined ? cookie : { ...cookie, [CSRF_HEADER]: wrong };
          const res = await httpCall(url, method, path, { body, headers });
          tally.record(refusedWith(res, 403, 'FORBIDDEN'), `${method} ${path} csrf=${wrong} → ${res.status}`);
        }
      }
      tally.finish();
      const device = await live.api('GET', `/api/v1/devices/${live.uuid}`);
      assert.equal(device.status, 200, 'the device is still there');
      assert.notEqual(device.data.name, 'csrf-renamed');

      const headers = { ...cookie, [CSRF_HEADER]: session.csrf };
      const made = await httpCall(url, 'POST', '/api/v1/fleets', {
        body: { name: 'csrf-made', slug: `csrf-${testDb.label}` },
        headers,
      });
      assert.equal(made.status, 201, made.text);
      const renamed = await httpCall(url, 'PATCH', `/api/v1/devices/${live.uuid}`, {
        body: { name: 'cookie-renamed' },
        headers,
      });
      assert.equal(renamed.status, 200, renamed.text);
      const tagged = await httpCall(url, 'POST', `/api/v1/devices/${live.uuid}/tags`, {
        body: { key: 'k', value: 'v' },
        headers,
      });
      assert.equal(tagged.status, 200, tagged.text);
      const untagged = await httpCall(url, 'DELETE', `/api/v1/devices/${live.uuid}/tags/k`, { headers });
      assert.equal(untagged.status, 204, untagged.text);
      // Reads need no CSRF header; bearer credentials work without one, and a bad bearer is not rescued by a cookie.
      assert.equal((await httpCall(url, 'GET', '/api/v1/whoami', { headers: cookie })).data.authMethod, 'session');
      const bearer = await live.api('PATCH', `/api/v1/devices/${live.uuid}`, { name: 'bearer-renamed' });
      assert.equal(bearer.status, 200);
      const badBearer = await httpCall(url, 'GET', '/api/v1/whoami', { key: 'not-a-key', headers });
      assert.equal(badBearer.status, 401);
      const token = await httpCall(url, 'GET', '/api/v1/auth/csrf', { headers: cookie });
      assert.deepEqual(token.data, { csrfToken: session.csrf });
      const noCookie = await httpCall(url, 'GET', '/api/v1/auth/csrf', { key: live.apiKey });
      assert.equal(noCookie.data.error.code, 'VALIDATION_FAILED');
    });

    test('a cookie-authenticated WebSocket upgrade must come from the server’s own origin', async () => {
      const tally = new AttackTally('browser-session websocket origin');
      const path = `/api/v1/devices/${live.uuid}/shell`;
      const own = new URL(url).origin;
      for (const origin of [
        undefined,
        'http://evil.example',
        'null',
        own.replace('127.0.0.1', 'localhost'),
        own.replace('http:', 'https:'),
        `${own}.evil.example`,
      ]) {
        const status = await upgradeStatus(url, path, {
          cookie: session.cookie,
          ...(origin === undefined ? {} : { origin }),
        });
        tally.record(status === 403, `origin ${origin} → ${status}`);
      }
      tally.finish();
      // From the dashboard's own page the upgrade is let through (the shell then waits for the device).
      assert.equal(await upgradeStatus(url, path, { cookie: session.cookie, origin: own }), 101);
      // A bearer WebSocket (the CLI) sends no Origin and needs none.
      assert.equal(await upgradeStatus(url, path, { authorization: `Bearer ${live.apiKey}` }), 101);
    });

    test('logout ends the session: the cookie stops working and its open event stream closes', async () => {
      const admin = live.server.admin!;
      const mine = await signIn(url, admin.username, admin.password);
      const stream = readEventStream(`${url}/api/v1/fleets/${live.slug}/events`, { cookie: mine.cookie });
      await stream.ready;
      const out = await httpCall(url, 'POST', '/api/v1/auth/logout', {
        headers: { cookie: mine.cookie, [CSRF_HEADER]: mine.csrf },
      });
      assert.equal(out.status, 204, out.text);
      const cleared = out.headers.get('set-cookie') ?? '';
      assert.match(cleared, new RegExp(`^${SESSION_COOKIE}=;`));
      assert.match(cleared, /Max-Age=0/i);
      await waitFor('the stream of the ended session to close', () => stream.ended.then(() => true), {
        timeoutMs: 2_000,
      });
      const after = await httpCall(url, 'GET', '/api/v1/whoami', { headers: { cookie: mine.cookie } });
      assert.equal(after.status, 401);
      assert.equal(after.data.error.code, 'UNAUTHENTICATED');
      // The other browser session is untouched.
      assert.equal((await httpCall(url, 'GET', '/api/v1/whoami', { headers: { cookie: session.cookie } })).status, 200);

      // A session token (the CLI's login) logs out the same way; an API key is not a session.
      const login = await httpCall(url, 'POST', '/api/v1/auth/login', {
        body: { username: admin.username, password: admin.password },
      });
      assert.equal((await httpCall(url, 'POST', '/api/v1/auth/logout', { key: login.data.token })).status, 204);
      assert.equal((await httpCall(url, 'GET', '/api/v1/whoami', { key: login.data.token })).status, 401);
      const withKey = await httpCall(url, 'POST', '/api/v1/auth/logout', { key: live.apiKey });
      assert.equal(withKey.status, 400);
      assert.match(withKey.data.error.message, /delete the key/);
    });
  });

  describe(`security: cookie sessions, guessing and HTTPS (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb, {
        publicUrl: 'https://flotilla.example',
        guessLimits: { sourceFailures: 8, freePasswordFailures: 3 },
      });
      await h.call('POST', '/api/v1/users', h.adminKey, { username: 'dana', password: 'dana-password' });
    });
    after(() => h.close());

    test('behind HTTPS the cookie is Secure; wrong passwords share the login limiter; bad cookies are counted', async () => {
      const signed = await h.call('POST', '/api/v1/auth/browser-session', undefined, {
        username: 'admin',
        password: 'admin-password',
      });
      assert.equal(signed.statusCode, 200);
      assert.match(String(signed.headers['set-cookie']), /; Secure/);

      // Wrong passwords on /auth/login and on the browser sign-in count together for (dana, this address).
      for (const path of ['/api/v1/auth/login', '/api/v1/auth/browser-session', '/api/v1/auth/login']) {
        const res = await h.call('POST', path, undefined, { username: 'dana', password: 'wrong-password' });
        assert.equal(res.data.error.code, 'INVALID_CREDENTIALS');
      }
      const blocked = await h.call('POST', '/api/v1/auth/browser-session', undefined, {
        username: 'dana',
        password: 'wrong-password',
      });
      assert.equal(blocked.statusCode, 401, 'the fourth failure is still answered, then the pair is blocked');
      const locked = await h.call('POST', '/api/v1/auth/browser-session', undefined, {
        username: 'dana',
        password: 'dana-password',
      });
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.data.error.code, 'RATE_LIMITED');

      // Forged cookies count as wrong keys against the address (4 failures so far, 8 allowed).
      const tally = new AttackTally('browser-session forged cookies');
      for (let i = 0; i < 4; i++) {
        const res = await h.call('GET', '/api/v1/whoami', undefined, undefined, {
          cookie: `${SESSION_COOKIE}=forged-${i}`,
        });
        tally.record(res.statusCode === 401 && res.data.error.code === 'UNAUTHENTICATED', `forged ${i}`);
      }
      const limited = await h.call('GET', '/api/v1/whoami', undefined, undefined, {
        cookie: `${SESSION_COOKIE}=forged-last`,
      });
      tally.record(limited.statusCode === 429, `forged cookie past the limit → ${limited.statusCode}`);
      tally.finish();
    });
  });
}
