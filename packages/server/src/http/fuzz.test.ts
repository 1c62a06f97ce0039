import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { ERROR_CODE_HEADER, USER_ROUTES, isErrorBody } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { isBalenaClientPath } from '../errors/error-handler.js';
import type { Harness } from '../testing/harness.js';
import { fleetWithDevice, harness } from '../testing/harness.js';

/** Strings that have broken parsers and query builders elsewhere. */
const nasty = fc.constantFrom(
  "' OR 1=1 --",
  "'; DROP TABLE devices; --",
  '%',
  '_',
  '..%2f..%2fetc%2fpasswd',
  '\u0000',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '__proto__',
  'constructor',
  '9'.repeat(40),
  '-1',
  'a'.repeat(300),
  '1e309',
  'null',
);
const segment = fc.oneof(
  nasty,
  fc.string({ maxLength: 40 }),
  fc.stringMatching(/^[0-9a-f]{7,32}$/),
  fc.nat().map(String),
);
const body = fc.oneof(
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc
    .dictionary(
      fc.oneof(
        nasty,
        fc.constantFrom(
          'name',
          'slug',
          'value',
          'status',
          'images',
          'composition',
          'uuid',
          'application',
          'api_key',
          'pinnedRelease',
          'service',
          'key',
        ),
      ),
      fc.oneof(fc.jsonValue(), nasty),
    )
    .map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  nasty,
);

for (const testDb of testDatabases()) {
  describe(`every route answers garbage with 4xx (${testDb.label})`, () => {
    let h: Harness;
    let keys: string[];
    before(async () => {
      // Thousands of garbage credentials come from one address here; the guess limit is tested elsewhere.
      h = await harness(testDb, { guessLimits: { sourceFailures: 1_000_000 } });
      const d = await fleetWithDevice(h, h.adminKey, 'fuzz');
      keys = [h.adminKey, d.deviceKey, d.provisioningKey, 'nonsense'];
    });
    after(() => h.close());

    test('random params, bodies, headers and credentials', async () => {
      const routes = h.app.flotilla.routes;
      assert.ok(routes.length > 40);
      for (const route of routes) {
        await fc.assert(
          fc.asyncProperty(
            fc.array(segment, { minLength: 4, maxLength: 4 }),
            body,
            fc.option(
              fc.constantFrom(...keys.map((k) => `Bearer ${k}`), 'Bearer', 'Basic Zm9vOmJhcg==', "Bearer ' OR 1=1 --"),
              { nil: undefined },
            ),
            fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', undefined),
            fc.option(fc.dictionary(fc.constantFrom('$filter', 'fleet', 'service', 'apikey', '$select'), segment), {
              nil: undefined,
            }),
            async (segments, payload, authorization, contentType, query) => {
              // With a user's credentials this route, having no parameter to get wrong, opens a stream that stays
              // open (inject would wait for its end forever); every refusal of it is fuzzed still.
              if (route.url === USER_ROUTES.fleetCountsEvents.path && authorization === `Bearer ${h.adminKey}`) return;
              let i = 0;
              const path = route.url.replace(/:([a-zA-Z]+)/g, () => encodeURIComponent(segments[i++ % 4] ?? 'x'));
              const search = query ? `?${new URLSearchParams(query).toString()}` : '';
              const withBody = route.method !== 'GET' && route.method !== 'DELETE';
              const res = await h.app.inject({
                method: route.method as 'GET',
                url: path + search,
                headers: {
                  ...(authorization ? { authorization } : {}),
                  ...(contentType && withBody ? { 'content-type': contentType } : {}),
                },
                ...(withBody ? { payload } : {}),
              });
              if (route.url === '/metrics' || route.url === '/healthz' || route.url.endsWith('openapi.json')) {
                assert.equal(res.statusCode, 200);
                return;
              }
              assert.ok(res.statusCode < 500, `${route.method} ${path}${search} → ${res.statusCode} ${res.body}`);
              // The registry answers in the OCI / Docker token formats its clients expect, not ours.
              const foreignFormat = route.url.startsWith('/v2') || route.url.startsWith('/auth/');
              if (res.statusCode >= 400 && isBalenaClientPath(path)) {
                // balena's clients print a text body; the stable code ends it and is in the header.
                const code = String(res.headers[ERROR_CODE_HEADER] ?? '');
                assert.match(code, /^[A-Z_]+$/, `error code header: ${res.body}`);
                assert.ok(res.body.endsWith(`(${code})`), `error text: ${res.body}`);
              } else if (res.statusCode >= 400 && !foreignFormat)
                assert.ok(isErrorBody(JSON.parse(res.body)), `error body shape: ${res.body}`);
            },
          ),
          { numRuns: 25, includeErrorInReport: true },
        );
      }
    });

    test('oversized and malformed bodies', async () => {
      const big = await h.call(
        'POST',
        '/api/v1/fleets',
        h.adminKey,
        JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }),
      );
      assert.equal(big.statusCode, 413);
      assert.equal(big.data.error.code, 'PAYLOAD_TOO_LARGE');
      const bad = await h.call('POST', '/api/v1/fleets', h.adminKey, '{"name":');
      assert.equal(bad.data.error.code, 'INVALID_JSON');
      const invalid = await h.call('POST', '/api/v1/fleets', h.adminKey, { name: 'ok', extra: 1 });
      assert.equal(invalid.data.error.code, 'VALIDATION_FAILED');
      assert.ok(Array.isArray(invalid.data.error.details.issues));
      // Outside the server's own paths a GET is the dashboard's (its index.html once built): ask under /api.
      const missing = await h.call('GET', '/api/v1/no/such/route');
      assert.equal(missing.statusCode, 404);
      assert.equal(missing.data.error.code, 'NOT_FOUND');
    });
  });
}
