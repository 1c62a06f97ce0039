import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, tempDir, testDatabases, waitFor } from '@flotilla/testkit';
import { startServer } from './server.js';

const main = fileURLToPath(new URL('./main.js', import.meta.url));

for (const testDb of testDatabases()) {
  describe(`flotilla-server process (${testDb.label})`, () => {
    test('first start prints the admin line once; the secrets work; SIGTERM stops it', async () => {
      const dir = await tempDir();
      const created = await testDb.create();
      try {
        const port = await freePort();
        const args = [
          main,
          '--data',
          dir.path,
          '--port',
          String(port),
          '--log-level',
          'info',
          ...(created.url ? ['--database', created.url] : []),
        ];
        const run = async () => {
          const child = spawn(process.execPath, args, {
            stdio: ['ignore', 'pipe', 'pipe'],
            env: { ...process.env, FLOTILLA_ADMIN_PASSWORD: '' },
          });
          const lines: string[] = [];
          createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
          createInterface({ input: child.stderr }).on('line', (l) => lines.push(l));
          await waitFor('the server process listening', () => lines.some((l) => l.includes('listening on')), {
            timeoutMs: 20_000,
            intervalMs: 50,
          });
          return { child, lines };
        };
        const first = await run();
        const adminLines = first.lines.filter((l) => l.startsWith('FLOTILLA_ADMIN '));
        assert.equal(adminLines.length, 1, first.lines.join('\n'));
        const admin = JSON.parse(adminLines[0]!.slice('FLOTILLA_ADMIN '.length)) as {
          username: string;
          password: string;
          apiKey: string;
        };
        assert.equal(admin.username, 'admin');
        const url = `http://127.0.0.1:${port}`;
        assert.equal((await fetch(`${url}/healthz`)).status, 200);
        const whoami = await fetch(`${url}/api/v1/whoami`, { headers: { authorization: `Bearer ${admin.apiKey}` } });
        assert.equal(whoami.status, 200);
        const login = await fetch(`${url}/api/v1/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'admin', password: admin.password }),
        });
        assert.equal(login.status, 200);
        const { token } = (await login.json()) as { token: string };
        // The dashboard's sign-in: its cookie (Set-Cookie, then Cookie) and CSRF token must not reach the log either.
        const browser = await fetch(`${url}/api/v1/auth/browser-session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'admin', password: admin.password }),
        });
        const cookie = (browser.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
        const { csrfToken } = (await browser.json()) as { csrfToken: string };
        const cookieToken = cookie.split('=')[1] ?? '';
        assert.ok(cookieToken.length > 20 && csrfToken.length > 20);
        const withCookie = await fetch(`${url}/api/v1/auth/logout`, {
          method: 'POST',
          headers: { cookie, 'x-flotilla-csrf': csrfToken },
        });
        assert.equal(withCookie.status, 204);
        await waitFor('the request log lines', () => first.lines.some((l) => l.includes('/api/v1/auth/logout')), {
          timeoutMs: 5_000,
          intervalMs: 20,
        });
        const others = first.lines.filter((l) => !l.startsWith('FLOTILLA_ADMIN ')).join('\n');
        for (const [name, secret] of Object.entries({ ...admin, token, cookieToken, csrfToken }))
          if (name !== 'username') assert.ok(!others.includes(secret), `${name} appears only in the admin line`);
        first.child.kill('SIGTERM');
        const [code, signal] = (await once(first.child, 'exit')) as [number | null, string | null];
        assert.equal(code, 0, `exited with ${code ?? signal}; last output:\n${first.lines.slice(-10).join('\n')}`);
        const second = await run();
        assert.ok(!second.lines.some((l) => l.startsWith('FLOTILLA_ADMIN ')), 'no new admin on a database with users');
        second.child.kill('SIGINT');
        assert.equal(((await once(second.child, 'exit')) as [number | null])[0], 0);
      } finally {
        await created.drop();
        await dir.remove();
      }
    });

    test('startServer on port 0 answers on its url and reports the admin', async () => {
      const created = await testDb.create();
      const server = await startServer({
        host: '127.0.0.1',
        port: 0,
        ...(created.url ? { databaseUrl: created.url } : {}),
      });
      try {
        assert.ok(server.admin);
        const res = await fetch(`${server.url}/api/v1/fleets`, {
          headers: { authorization: `Bearer ${server.admin.apiKey}` },
        });
        assert.equal(res.status, 200);
        assert.equal(server.app.flotilla.publicUrl, server.url);
      } finally {
        await server.close();
        await created.drop();
      }
    });
  });
}

test('a bad flag stops the process at once, naming the flag and what it takes', async () => {
  const dir = await tempDir();
  try {
    for (const [flag, value] of [
      ['--delta-concurrency', '0'],
      ['--delta-max-layer-mb', 'lots'],
      ['--log-retention', '0'],
      ['--max-connections', '1.5'],
    ] as const) {
      const child = spawn(process.execPath, [main, '--data', dir.path, '--port', '0', flag, value], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 1, `${flag} ${value}: ${stderr}`);
      assert.match(stderr, new RegExp(`${flag} must be .*, not ${value.replace('.', '\\.')}`));
      assert.doesNotMatch(stderr, /\n\s+at /);
    }
  } finally {
    await dir.remove();
  }
});
