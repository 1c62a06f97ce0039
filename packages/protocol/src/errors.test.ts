import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES, FlotillaError, isErrorBody, isErrorCode, statusOf, type ErrorCode } from './errors.js';

test('every error code maps to a 4xx/5xx status and has a description', () => {
  for (const [code, entry] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[A-Z][A-Z0-9_]+$/, `${code} is SCREAMING_SNAKE`);
    assert.ok(entry.status >= 400 && entry.status <= 599, `${code} has an error status`);
    assert.ok(entry.description.length > 10, `${code} is described`);
    assert.equal(statusOf(code as ErrorCode), entry.status);
  }
});

test('FlotillaError serialises to the documented body', () => {
  const error = new FlotillaError('DEVICE_NOT_FOUND', 'no device abc1234', { details: { uuid: 'abc1234' } });
  assert.equal(error.status, 404);
  assert.deepEqual(error.toBody(), {
    error: { code: 'DEVICE_NOT_FOUND', message: 'no device abc1234', details: { uuid: 'abc1234' } },
  });
  assert.ok(isErrorBody(error.toBody()));
  assert.ok(!isErrorBody({ error: { code: 'NOT_A_CODE', message: 'x' } }));
  assert.ok(!isErrorCode('toString'), 'prototype keys are not codes');
});
