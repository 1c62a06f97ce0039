import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { awaitHealthy, controlPlaneConnected, engineAnswers } from './health.js';

describe('trial boot health checks', () => {
  it('healthy once every check passes in the same round', async () => {
    let connected = false;
    setTimeout(() => (connected = true), 50);
    assert.equal(
      await awaitHealthy([engineAnswers(async () => 'v1'), controlPlaneConnected(() => connected)], 5000, 10),
      null,
    );
  });

  it('not healthy in time: names each failing check with its last error', async () => {
    const failure = await awaitHealthy(
      [
        engineAnswers(async () => {
          throw new Error('connect ENOENT /var/run/docker.sock');
        }),
        controlPlaneConnected(() => false),
        engineAnswers(async () => 'ok'),
      ],
      100,
      20,
    );
    assert.match(
      failure ?? '',
      /^not healthy within 0 s: engine \(connect ENOENT \/var\/run\/docker.sock\), control plane connection \(not yet\)$/,
    );
  });

  it('a check that never answers is cut at the deadline', async () => {
    const started = Date.now();
    const hang = engineAnswers(() => new Promise(() => undefined)); // ignores its signal
    assert.match((await awaitHealthy([hang], 200, 20)) ?? '', /engine \(no answer within \d+ ms\)/);
    assert.ok(Date.now() - started < 5000);
  });
});
