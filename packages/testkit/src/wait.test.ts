import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { waitFor } from './wait.js';

describe('waitFor', () => {
  it('resolves with the first value that is not undefined or false', async () => {
    let calls = 0;
    const value = await waitFor('the third call', () => (++calls >= 3 ? { calls } : undefined), { intervalMs: 1 });
    assert.deepEqual(value, { calls: 3 });
  });

  it('fails after the timeout, saying what it waited for and the last error', async () => {
    const started = Date.now();
    await assert.rejects(
      waitFor(
        'the moon',
        () => {
          throw new Error('still night');
        },
        { timeoutMs: 200, intervalMs: 20 },
      ),
      { message: 'timed out after 200 ms waiting for the moon: still night' },
    );
    assert.ok(Date.now() - started < 2_000);
  });

  it('is bounded even when a check never finishes', async () => {
    const started = Date.now();
    await assert.rejects(
      waitFor('an answer', () => new Promise<boolean>(() => undefined), { timeoutMs: 200 }),
      {
        message: 'timed out after 200 ms waiting for an answer: the last check was still running',
      },
    );
    assert.ok(Date.now() - started < 2_000);
  });
});
