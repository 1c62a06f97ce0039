import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isErrorBody } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { harness } from '../testing/harness.js';
import { LOGIN_ATTEMPTS_PER_MINUTE } from './routes.js';

for (const testDb of testDatabases()) {
  test(`[${testDb.label}] password guessing is slowed per account: RATE_LIMITED with Retry-After, other accounts unaffected`, async () => {
    const h = await harness(testDb);
    try {
      assert.equal(
        (await h.call('POST', '/api/v1/users', h.adminKey, { username: 'carol', password: 'carol-password' }))
          .statusCode,
        201,
      );
      for (let i = 0; i < LOGIN_ATTEMPTS_PER_MINUTE; i++) {
        const wrong = await h.call('POST', '/api/v1/auth/login', undefined, {
          username: 'admin',
          password: `guess-${i}`,
        });
        assert.equal(wrong.statusCode, 401, `attempt ${i + 1} is judged on the password`);
      }
      // The right password no longer helps within the window: the account is being guessed at.
      const blocked = await h.call('POST', '/api/v1/auth/login', undefined, {
        username: 'ADMIN',
        password: 'admin-password',
      });
      assert.equal(blocked.statusCode, 429);
      assert.ok(isErrorBody(blocked.data));
      assert.equal(blocked.data.error.code, 'RATE_LIMITED');
      assert.match(blocked.data.error.message, /retry in \d+ s/);
      assert.ok(Number(blocked.headers['retry-after']) > 0, `Retry-After: ${String(blocked.headers['retry-after'])}`);

      // Another account from the same address logs in; API keys are never limited.
      assert.equal(
        (await h.call('POST', '/api/v1/auth/login', undefined, { username: 'carol', password: 'carol-password' }))
          .statusCode,
        200,
      );
      assert.equal((await h.call('GET', '/api/v1/whoami', h.adminKey)).statusCode, 200);
    } finally {
      await h.close();
    }
  });
}
