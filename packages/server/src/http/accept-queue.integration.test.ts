import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { startServer } from '../server.js';
import { LISTEN_BACKLOG, describeAcceptQueue, somaxconn } from './accept-queue.js';

const hasSs = (() => {
  try {
    execFileSync('ss', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

test("the server listens with the longest accept queue the kernel allows, not Node's 511", {
  skip: !hasSs && 'no ss (iproute2) here',
}, async () => {
  const cap = somaxconn();
  assert.ok(cap, 'Linux /proc/sys/net/core/somaxconn');
  const server = await startServer({ host: '127.0.0.1', port: 0 });
  try {
    const port = new URL(server.url).port;
    const out = execFileSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
    // State, Recv-Q, Send-Q, …: a listening socket's Send-Q is its backlog.
    const backlog = Number(out.trim().split(/\s+/)[2]);
    assert.equal(backlog, Math.min(cap, LISTEN_BACKLOG));
  } finally {
    await server.close();
  }
});

test('the start line gives the accept queue, and says how to lengthen a short one', () => {
  assert.equal(describeAcceptQueue(4096), 'accept queue 4096 connections');
  assert.equal(describeAcceptQueue(1_000_000), `accept queue ${LISTEN_BACKLOG} connections`);
  assert.match(describeAcceptQueue(128), /^accept queue 128 connections \(raise net\.core\.somaxconn/);
});
