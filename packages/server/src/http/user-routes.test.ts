import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { API_PREFIX, USER_ROUTES } from '@flotilla/protocol';
import type { UserRoute } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { openApiDocument } from '../openapi/openapi.js';
import type { Harness } from '../testing/harness.js';
import { harness } from '../testing/harness.js';

const entries = Object.entries(USER_ROUTES) as [string, UserRoute][];
const key = (method: string, path: string) => `${method} ${path}`;

/** The user API is defined once, in USER_ROUTES: what the server serves under /api/v1 is exactly that table. */
for (const testDb of testDatabases()) {
  describe(`user routes match the protocol table (${testDb.label})`, () => {
    let h: Harness;
    before(async () => {
      h = await harness(testDb);
    });
    after(() => h.close());

    test('every served /api/v1 route is a USER_ROUTES entry, and every entry is served', () => {
      const served = new Set(
        h.app.flotilla.routes.filter((r) => r.url.startsWith(`${API_PREFIX}/`)).map((r) => key(r.method, r.url)),
      );
      const table = new Set(entries.map(([, r]) => key(r.method, r.path)));
      assert.deepEqual([...served].filter((r) => !table.has(r)).sort(), [], 'served but missing from USER_ROUTES');
      assert.deepEqual([...table].filter((r) => !served.has(r)).sort(), [], 'in USER_ROUTES but not served');
      assert.equal(table.size, entries.length, 'two entries name the same method and path');
    });

    test('GET /api/v1/openapi.json is the generated document', async () => {
      const res = await h.call('GET', USER_ROUTES.openApi.path);
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.data, JSON.parse(JSON.stringify(openApiDocument())));
    });
  });
}

describe('the OpenAPI document', () => {
  const doc = openApiDocument();
  const operationOf = (route: UserRoute) =>
    doc.paths[route.path.replace(/:([a-zA-Z]+)/g, '{$1}')]?.[route.method.toLowerCase()] as
      | {
          operationId: string;
          summary: string;
          security?: unknown[];
          parameters?: { name: string; in: string }[];
          requestBody?: unknown;
          responses: Record<string, { content?: unknown }>;
        }
      | undefined;

  test('covers every USER_ROUTES entry with its summary, parameters, body, answer and error shape', () => {
    for (const [name, route] of entries) {
      const op = operationOf(route);
      assert.ok(op, `${name}: ${route.method} ${route.path} is not documented`);
      assert.equal(op.operationId, name);
      assert.equal(op.summary, route.summary);
      const pathParams = [...route.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => m[1]);
      assert.deepEqual(
        (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name),
        pathParams,
        `${name}: path parameters`,
      );
      if (route.query)
        assert.ok(
          (op.parameters ?? []).some((p) => p.in === 'query'),
          `${name}: query parameters are documented`,
        );
      assert.equal(op.requestBody !== undefined, route.body !== undefined, `${name}: request body`);
      const success = op.responses[String(route.status ?? 200)];
      assert.ok(success, `${name}: success status ${route.status ?? 200}`);
      assert.equal(success.content !== undefined, route.response !== undefined, `${name}: answer schema`);
      assert.ok(op.responses.default?.content, `${name}: error shape`);
      assert.equal(op.security !== undefined, route.auth === 'none', `${name}: security`);
    }
  });

  test('offers the bearer security scheme and the error code table', () => {
    assert.deepEqual(doc.security, [{ bearer: [] }]);
    const schemes = (doc.components as { securitySchemes: Record<string, { scheme: string }> }).securitySchemes;
    assert.equal(schemes.bearer?.scheme, 'bearer');
    const login = operationOf(USER_ROUTES.login);
    assert.deepEqual(login?.security, [], 'logging in needs no credential');
  });
});
