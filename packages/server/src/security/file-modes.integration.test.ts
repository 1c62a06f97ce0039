import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { chmod, lstat, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir, testDatabases, waitFor } from '@flotilla/testkit';

const main = fileURLToPath(new URL('../main.js', import.meta.url));

/** Every entry under `root` (itself included) with its permission bits. */
async function modes(root: string): Promise<{ path: string; mode: number; dir: boolean }[]> {
  const out: { path: string; mode: number; dir: boolean }[] = [];
  const visit = async (path: string) => {
    const info = await lstat(path);
    out.push({ path, mode: info.mode & 0o777, dir: info.isDirectory() });
    if (info.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(root);
  return out;
}

/** Runs the real server process on `dataDir` until `work` is done, then stops it with SIGTERM. */
async function withServerProcess(
  dataDir: string,
  databaseUrl: string | undefined,
  work: (url: string, apiKey: string | undefined) => Promise<void>,
): Promise<void> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [main, '--data', dataDir, '--port', String(port), ...(databaseUrl ? ['--database', databaseUrl] : [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FLOTILLA_ADMIN_PASSWORD: '' } },
  );
  const lines: string[] = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr }).on('line', (l) => lines.push(l));
  try {
    await waitFor('the server to listen', () => lines.some((l) => l.includes('listening on')), { timeoutMs: 20_000 });
    const admin = lines.find((l) => l.startsWith('FLOTILLA_ADMIN '));
    const apiKey = admin ? (JSON.parse(admin.slice('FLOTILLA_ADMIN '.length)) as { apiKey: string }).apiKey : undefined;
    await work(`http://127.0.0.1:${port}`, apiKey);
  } finally {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}

/** Writes through every path that creates files: database rows, a registry blob (via an upload), an open upload. */
async function writeEverything(url: string, apiKey: string): Promise<void> {
  const user = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const fleet = await fetch(`${url}/api/v1/fleets`, {
    method: 'POST',
    headers: user,
    body: JSON.stringify({ name: 'modes', slug: 'modes' }),
  });
  assert.equal(fleet.status, 201);
  const env = await fetch(`${url}/api/v1/fleets/modes/env`, {
    method: 'POST',
    headers: user,
    body: JSON.stringify({ name: 'SECRET', value: 'tenant secret' }),
  });
  assert.equal(env.status, 200);
  const registry = { authorization: `Basic ${Buffer.from(`admin:${apiKey}`).toString('base64')}` };
  const blob = Buffer.from('layer bytes');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const start = await fetch(`${url}/v2/modes/main/blobs/uploads/`, { method: 'POST', headers: registry });
  assert.equal(start.status, 202);
  const put = await fetch(`${url}${start.headers.get('location')}?digest=${digest}`, {
    method: 'PUT',
    headers: { ...registry, 'content-type': 'application/octet-stream' },
    body: blob,
  });
  assert.equal(put.status, 201);
  const open = await fetch(`${url}/v2/modes/main/blobs/uploads/`, { method: 'POST', headers: registry });
  assert.equal(open.status, 202);
}

for (const testDb of testDatabases()) {
  describe(`data folder file modes (${testDb.label})`, () => {
    test('a fresh start creates nothing group- or world-readable; a loose folder is tightened on start', async () => {
      const dir = await tempDir('flotilla-modes-');
      const created = await testDb.create();
      try {
        const dataDir = join(dir.path, 'data');
        await withServerProcess(dataDir, created.url, async (url, apiKey) => {
          assert.ok(apiKey, 'first start prints the admin key');
          await writeEverything(url, apiKey);
        });
        const fresh = await modes(dataDir);
        const names = fresh.map((e) => e.path.slice(dataDir.length));
        for (const expected of ['/registry/token-secret', '/registry/blobs/sha256', '/registry/uploads'])
          assert.ok(names.includes(expected), `${expected} exists`);
        if (testDb.dialect === 'sqlite') assert.ok(names.includes('/flotilla.db'));
        const open = fresh.filter((e) => (e.mode & 0o077) !== 0);
        console.log(
          `security: file modes (${testDb.label}): fresh start, ${fresh.length} entries checked, ${open.length} group/world-accessible`,
        );
        assert.deepEqual(
          open.map((e) => `${e.path} ${e.mode.toString(8)}`),
          [],
        );

        // An older version's (or a hand-made) folder: everything 0755/0644, plus a stray readable file.
        await writeFile(join(dataDir, 'registry', 'uploads', 'stray'), 'left behind');
        for (const entry of await modes(dataDir)) await chmod(entry.path, entry.dir ? 0o755 : 0o644);
        await withServerProcess(dataDir, created.url, async () => undefined);
        const tightened = await modes(dataDir);
        const wrong = tightened.filter((e) => e.mode !== (e.dir ? 0o700 : 0o600));
        console.log(
          `security: file modes (${testDb.label}): loose folder, ${tightened.length} entries loosened, ${tightened.length - wrong.length} tightened on start`,
        );
        assert.deepEqual(
          wrong.map((e) => `${e.path} ${e.mode.toString(8)}`),
          [],
        );
      } finally {
        await created.drop();
        await dir.remove();
      }
    });
  });
}
