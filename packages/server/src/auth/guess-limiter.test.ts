import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { DEFAULT_GUESS_LIMITS, GuessLimiter } from './guess-limiter.js';

const wrong = async () => {
  throw new FlotillaError('INVALID_CREDENTIALS', 'wrong username or password');
};
const right = async () => 'user';

async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    return String(await run());
  } catch (error) {
    return error instanceof FlotillaError ? error.code : 'other';
  }
}

test('wrong passwords: free failures, then exponential backoff per (username, address)', async () => {
  let at = 1_000_000;
  const limiter = new GuessLimiter(DEFAULT_GUESS_LIMITS, () => at);
  const guess = () => outcome(() => limiter.password('Admin', '10.0.0.1', wrong));
  for (let i = 0; i < DEFAULT_GUESS_LIMITS.freePasswordFailures; i++)
    assert.equal(await guess(), 'INVALID_CREDENTIALS');
  // The sixth failure blocks for 1 s, the next for 2 s, then 4 s: each block refuses even the right password.
  assert.equal(await guess(), 'INVALID_CREDENTIALS');
  for (const blockMs of [1_000, 2_000, 4_000]) {
    assert.equal(await outcome(() => limiter.password('admin', '10.0.0.1', right)), 'RATE_LIMITED');
    at += blockMs - 1;
    assert.equal(await guess(), 'RATE_LIMITED');
    at += 1;
    assert.equal(await guess(), 'INVALID_CREDENTIALS');
  }
  try {
    await limiter.password('admin', '10.0.0.1', right);
    assert.fail('blocked');
  } catch (error) {
    assert.ok(error instanceof FlotillaError);
    assert.deepEqual(error.details, { retryAfterSeconds: 8 });
  }
  // The same user from another address, and another user from the same address, are not slowed.
  assert.equal(await outcome(() => limiter.password('admin', '10.0.0.2', right)), 'user');
  assert.equal(await outcome(() => limiter.password('carol', '10.0.0.1', right)), 'user');
  // Once the block is over, the right password works and clears the count.
  at += 8_000;
  assert.equal(await outcome(() => limiter.password('admin', '10.0.0.1', right)), 'user');
  assert.equal(await guess(), 'INVALID_CREDENTIALS');
});

test('wrong keys are counted per address within a window; right ones never', async () => {
  let at = 0;
  const limiter = new GuessLimiter({ ...DEFAULT_GUESS_LIMITS, sourceFailures: 3, sourceWindowMs: 10_000 }, () => at);
  for (let i = 0; i < 10; i++) assert.equal(await outcome(() => limiter.key('10.0.0.1', right)), 'user');
  for (let i = 0; i < 3; i++)
    assert.equal(await outcome(() => limiter.key('10.0.0.1', async () => undefined)), 'undefined');
  assert.equal(await outcome(() => limiter.key('10.0.0.1', right)), 'RATE_LIMITED');
  assert.equal(await outcome(() => limiter.key('10.0.0.2', right)), 'user');
  at = 10_000;
  assert.equal(await outcome(() => limiter.key('10.0.0.1', right)), 'user');
});

test('memory is bounded: the least recently failed entries are dropped first', async () => {
  const limiter = new GuessLimiter({ ...DEFAULT_GUESS_LIMITS, sourceFailures: 1, maxEntries: 2 });
  limiter.keyFailed('a');
  limiter.keyFailed('b');
  limiter.keyFailed('c');
  assert.equal(await outcome(() => limiter.key('a', right)), 'user');
  assert.equal(await outcome(() => limiter.key('c', right)), 'RATE_LIMITED');
});
