import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { harness, type Harness } from '../testing/harness.js';
import { DASHBOARD_SECURITY_HEADERS, pageSecurityHeaders, withNonce } from './register-dashboard.js';

const INDEX = '<!doctype html><html><head><script type="module" src="/assets/app-3f9a1c.js"></script></head></html>';
const SCRIPT = 'console.log("dashboard");';

const testDb = testDatabases()[0]!;

describe('the dashboard served at /', () => {
  let h: Harness;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('flotilla-dashboard-');
    await mkdir(join(dir.path, 'assets'));
    await writeFile(join(dir.path, 'index.html'), INDEX);
    await writeFile(join(dir.path, 'assets', 'app-3f9a1c.js'), SCRIPT);
    await writeFile(join(dir.path, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    await writeFile(join(dir.path, '.env'), 'SECRET=1');
    h = await harness(testDb, { dashboardDir: dir.path });
  });
  after(async () => {
    await h.close();
    await dir.remove();
  });

  const assertSecurityHeaders = (headers: Record<string, unknown>, what: string) => {
    for (const [name, value] of Object.entries(DASHBOARD_SECURITY_HEADERS)) assert.equal(headers[name], value, what);
    assert.match(String(headers['content-security-policy']), /script-src 'self';/);
    assert.doesNotMatch(String(headers['content-security-policy']), /unsafe-inline|unsafe-eval/);
  };

  test('index.html at / and at every app route, never stored, with the security headers and a fresh nonce', async () => {
    const nonces = new Set<string>();
    for (const path of ['/', '/index.html', '/fleets/demo/devices', '/devices/3f9a1c2?tab=logs', '/settings/keys']) {
      const res = await h.call('GET', path);
      assert.equal(res.statusCode, 200, path);
      // The nonce is in the CSP (for style elements only) and in the page, where the app reads it.
      const csp = String(res.headers['content-security-policy']);
      const nonce = /style-src 'self' 'nonce-([A-Za-z0-9+/]{22}==)';/.exec(csp)?.[1];
      assert.ok(nonce, `${path}: ${csp}`);
      assert.equal(Buffer.from(nonce, 'base64').length, 16, path);
      nonces.add(nonce);
      assert.equal(res.body, withNonce(INDEX, nonce), path);
      assert.ok(res.body.startsWith(`<!doctype html><html><head><meta name="csp-nonce" content="${nonce}">`), res.body);
      assert.match(String(res.headers['content-type']), /^text\/html/, path);
      for (const [name, value] of Object.entries(pageSecurityHeaders(nonce))) assert.equal(res.headers[name], value);
      assert.equal(res.headers['cache-control'], 'no-store', path);
      assert.match(csp, /script-src 'self';/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|script-src[^;]*nonce/);
    }
    assert.equal(nonces.size, 5, 'every response has its own nonce');
    const head = await h.call('HEAD', '/fleets/demo');
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['cache-control'], 'no-store');
  });

  test('withNonce puts the meta first in <head>, whatever its attributes, or first in a page without one', () => {
    assert.equal(
      withNonce('<html><HEAD lang="en"><title>x</title>', 'n'),
      '<html><HEAD lang="en"><meta name="csp-nonce" content="n"><title>x</title>',
    );
    assert.equal(withNonce('<html><header>', 'n'), '<meta name="csp-nonce" content="n"><html><header>');
  });

  test('hashed assets are cached for good; other files are revalidated', async () => {
    const script = await h.call('GET', '/assets/app-3f9a1c.js');
    assert.equal(script.statusCode, 200);
    assert.equal(script.body, SCRIPT);
    assert.match(String(script.headers['content-type']), /javascript/);
    assert.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
    assertSecurityHeaders(script.headers, 'asset');
    const icon = await h.call('GET', '/favicon.svg');
    assert.equal(icon.statusCode, 200);
    assert.equal(icon.headers['cache-control'], 'no-cache');
  });

  test('the server’s own paths, missing assets and other methods keep the API’s 404; nothing outside is read', async () => {
    for (const [method, path] of [
      ['GET', '/api/v1/nope'],
      ['GET', '/api/v1'],
      ['GET', '/device/v9/thing'],
      ['GET', '/v2/nope/manifests/x'],
      ['GET', '/auth/nope'],
      ['GET', '/assets/app-old.js'],
      ['POST', '/fleets/demo'],
      ['DELETE', '/'],
    ] as const) {
      const res = await h.call(method, path);
      assert.equal(res.statusCode, path.startsWith('/v2/') ? 401 : 404, `${method} ${path}: ${res.body}`);
      if (!path.startsWith('/v2/')) assert.equal(res.data?.error?.code, 'NOT_FOUND', `${method} ${path}`);
    }
    for (const path of ['/.env', '/..%2f..%2fetc%2fpasswd', '/assets/..%2f.env', '/%2e%2e/%2e%2e/etc/passwd']) {
      const res = await h.call('GET', path);
      assert.ok(!res.body.includes('SECRET') && !res.body.includes('root:'), `${path} → ${res.body}`);
    }
    assert.equal((await h.call('GET', '/healthz')).statusCode, 200);
    assert.equal((await h.call('GET', '/api/v1/whoami', h.adminKey)).statusCode, 200);
  });
});

describe('a server whose dashboard is not built', () => {
  let h: Harness;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir('flotilla-dashboard-');
    h = await harness(testDb, { dashboardDir: join(dir.path, 'missing') });
  });
  after(async () => {
    await h.close();
    await dir.remove();
  });

  test('/ says so in a short plain page; app routes are 404s', async () => {
    const res = await h.call('GET', '/');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    assert.match(res.body, /dashboard is not built/);
    const route = await h.call('GET', '/fleets/demo');
    assert.equal(route.statusCode, 404);
    assert.equal(route.data.error.code, 'NOT_FOUND');
  });
});
