#!/usr/bin/env node
// Registry bearer-token bench: what re-checking a token's credential on every request costs. A server in this
// process on loopback (SQLite), one blob pushed, then BENCH_REQUESTS (3,000) sequential HEADs of that blob with one
// bearer token, after 200 warm-up requests. Prints the mean time per request.
//   node bench/registry-token.mjs [tree]   tree: another checkout's root (built) to compare; default this one.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? new URL('..', import.meta.url).pathname);
const requests = Number(process.env.BENCH_REQUESTS ?? 3000);
const { startServer } = await import(join(root, 'packages/server/dist/server.js'));
const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-registry-'));
const server = await startServer({ dataDir: dir, host: '127.0.0.1', port: 0 });
try {
  const key = server.admin.apiKey;
  const created = await fetch(`${server.url}/api/v1/fleets`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench', slug: 'bench' }),
  });
  if (created.status !== 201) throw new Error(`create fleet: ${created.status}`);
  const basic = `Basic ${Buffer.from(`admin:${key}`).toString('base64')}`;
  const blob = Buffer.from('bench layer');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const pushed = await fetch(`${server.url}/v2/bench/web/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { authorization: basic },
    body: blob,
  });
  if (pushed.status !== 201) throw new Error(`push: ${pushed.status}`);
  const service = new URL(server.url).host;
  const scope = 'repository:bench/web:pull,push';
  const tokenAnswer = await fetch(`${server.url}/auth/v1/token?service=${service}&scope=${scope}`, {
    headers: { authorization: basic },
  });
  const auth = `Bearer ${(await tokenAnswer.json()).token}`;
  const head = async () => {
    const answer = await fetch(`${server.url}/v2/bench/web/blobs/${digest}`, {
      method: 'HEAD',
      headers: { authorization: auth },
    });
    if (answer.status !== 200) throw new Error(`HEAD: ${answer.status}`);
  };
  for (let i = 0; i < 200; i += 1) await head();
  const start = performance.now();
  for (let i = 0; i < requests; i += 1) await head();
  const ms = performance.now() - start;
  console.log(`${root}: ${requests} HEAD of a blob with a bearer token: ${(ms / requests).toFixed(3)} ms/request`);
} finally {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
}
