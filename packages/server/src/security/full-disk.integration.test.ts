import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { utimes } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import SqliteDatabase from 'better-sqlite3';
import { tempDir, testDatabases, waitFor } from '@flotilla/testkit';
import { startServer } from '../server.js';
import { answerData, liveServerWithDevice, postDeviceLogs } from '../testing/index.js';

const MB = 1024 * 1024;

/** A 64 MB tmpfs in a temp folder, or the reason it cannot be made (not root, no mount namespace). */
async function smallDisk(): Promise<{ path: string; remove: () => Promise<void> } | string> {
  const dir = await tempDir('flotilla-full-disk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0700', 'tmpfs', dir.path], { stdio: 'pipe' });
  } catch (error) {
    await dir.remove();
    return `cannot mount a 64 MB tmpfs here (${(error as Error).message.split('\n')[0]}); run the tests as root`;
  }
  return {
    path: dir.path,
    remove: async () => {
      execFileSync('umount', ['-l', dir.path]);
      await dir.remove();
    },
  };
}

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  data: any;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP exchange with a body sent whole (node:http, so an answer sent before the body ends is still read). */
function exchange(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: Buffer | string,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const data = answerData(text, (name) => res.headers[name]);
        resolve({ status: res.statusCode ?? 0, data, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const codeOf = (a: Answer): string | undefined => a.data?.error?.code ?? a.data?.errors?.[0]?.code;

for (const testDb of testDatabases()) {
  describe(`full disk (${testDb.label})`, () => {
    test('writes answer 507 STORAGE_FULL, healthz 503, abandoned uploads go, releases fail, all recovers', async (t) => {
      const disk = await smallDisk();
      if (typeof disk === 'string') {
        t.skip(disk);
        return;
      }
      const dataDir = join(disk.path, 'data');
      const live = await liveServerWithDevice(testDb, {
        dataDir,
        diskMinFreeBytes: 8 * MB,
        diskCheckIntervalMs: 200,
        releaseTimeoutMs: 3_000,
        logRetention: 1_000_000,
      });
      const seen: Record<string, number> = {};
      let filling = true;
      const count = (_label: string, a: Answer) => {
        if (!filling) return a;
        const key = `${a.status}${codeOf(a) ? ` ${codeOf(a)}` : ''}`;
        seen[key] = (seen[key] ?? 0) + 1;
        return a;
      };
      try {
        const url = live.server.url;
        const key = live.apiKey;
        const user = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
        const registryAuth = { authorization: `Basic ${Buffer.from(`admin:${key}`).toString('base64')}` };
        const repo = `${live.slug}/main`;
        const uploads = join(dataDir, 'registry', 'uploads');

        // Before the disk fills: a variable, log lines and a blob, which must all survive.
        assert.equal(
          (await live.api('POST', `/api/v1/fleets/${live.slug}/env`, { name: 'KEEP', value: 'me' })).status,
          200,
        );
        assert.equal(
          await postDeviceLogs(url, live.uuid, live.deviceKey, [{ message: 'before the fill', timestamp: Date.now() }]),
          201,
        );
        const earlyBlob = Buffer.from('a layer pushed while there was room');
        const started = await exchange(`${url}/v2/${repo}/blobs/uploads/`, 'POST', registryAuth);
        assert.equal(started.status, 202);
        const put = await exchange(
          `${url}${started.headers.location as string}?digest=${sha256(earlyBlob)}`,
          'PUT',
          { ...registryAuth, 'content-type': 'application/octet-stream' },
          earlyBlob,
        );
        assert.equal(put.status, 201);
        const composition = { services: { main: { image: 'busybox' } } };
        const pushed = await live.api('POST', `/api/v1/fleets/${live.slug}/releases`, { composition });
        const abandoned = await live.api('POST', `/api/v1/fleets/${live.slug}/releases`, { composition });
        assert.equal(pushed.status, 201);
        assert.equal(pushed.data.status, 'running');

        // Fill: one half-finished 40 MB upload the client walks away from, then a second push that hits the wall.
        const t0 = Date.now();
        const upload = async (bytes: number) => {
          const start = count('upload start', await exchange(`${url}/v2/${repo}/blobs/uploads/`, 'POST', registryAuth));
          if (start.status !== 202) return { start, patch: undefined, location: undefined };
          const location = start.headers.location as string;
          const patch = count(
            'upload patch',
            await exchange(
              `${url}${location}`,
              'PATCH',
              { ...registryAuth, 'content-type': 'application/octet-stream' },
              Buffer.alloc(bytes, 7),
            ),
          );
          return { start, patch, location };
        };
        const first = await upload(40 * MB);
        assert.equal(first.patch?.status, 202, 'the first 40 MB fit');
        const second = await upload(40 * MB);
        assert.equal(
          second.patch?.status,
          507,
          `a write that does not fit answers 507: ${JSON.stringify(second.patch?.data)}`,
        );
        assert.equal(codeOf(second.patch!), 'STORAGE_FULL');
        // The release whose push failed: the CLI marks it failed (which may itself find no room; never a 500).
        const markFailed = count(
          'mark failed',
          await exchange(
            `${url}/api/v1/releases/${pushed.data.id}`,
            'PATCH',
            user,
            JSON.stringify({ status: 'failed' }),
          ),
        );
        assert.ok([200, 507].includes(markFailed.status), JSON.stringify(markFailed.data));

        // Everything else that writes, while full: 2xx if it still fit, else 507 STORAGE_FULL; never 500 or 400.
        const lines = Array.from({ length: 20_000 }, (_, i) => ({
          message: `line ${i} ${'x'.repeat(150)}`,
          timestamp: Date.now(),
        }));
        const logStatus = await postDeviceLogs(url, live.uuid, live.deviceKey, lines);
        seen[`${logStatus} (log stream)`] = (seen[`${logStatus} (log stream)`] ?? 0) + 1;
        if (testDb.dialect === 'sqlite') assert.equal(logStatus, 507, 'the log store is on the full disk');
        else assert.equal(logStatus, 201, "PostgreSQL's disk is not the data folder");
        for (let i = 0; i < 5; i += 1) {
          const write = count(
            'variable',
            await exchange(
              `${url}/api/v1/fleets/${live.slug}/env`,
              'PUT',
              user,
              JSON.stringify({ name: `V${i}`, value: 'y'.repeat(60_000) }),
            ),
          );
          assert.ok(
            write.status === 200 || (write.status === 507 && codeOf(write) === 'STORAGE_FULL'),
            JSON.stringify(write.data),
          );
        }
        const refused = count('new upload', await exchange(`${url}/v2/${repo}/blobs/uploads/`, 'POST', registryAuth));
        assert.equal(refused.status, 507, 'a new upload is refused while nothing abandoned can be reclaimed');
        const health = count('healthz', await exchange(`${url}/healthz`, 'GET', {}));
        assert.equal(health.status, 503);
        assert.equal(codeOf(health), 'STORAGE_LOW');
        const filledMb =
          (statSync(join(uploads, first.location!.split('/').pop()!)).size +
            statSync(join(uploads, second.location!.split('/').pop()!)).size) /
          MB;
        assert.equal(readdirSync(uploads).length, 2, 'uploads still in progress are not taken away');

        // The clients are gone for good: their uploads become abandoned (older first: the first one).
        const firstId = first.location!.split('/').pop()!;
        const secondId = second.location!.split('/').pop()!;
        await utimes(join(uploads, firstId), new Date(Date.now() - 2 * 3600_000), new Date(Date.now() - 2 * 3600_000));
        await utimes(join(uploads, secondId), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
        const t1 = Date.now();
        filling = false;
        await waitFor('healthz to answer 200 again', async () => (await fetch(`${url}/healthz`)).status === 200, {
          timeoutMs: 10_000,
          intervalMs: 50,
        });
        const recoverMs = Date.now() - t1;
        assert.ok(!existsSync(join(uploads, firstId)), 'the most stale upload was removed');
        assert.ok(existsSync(join(uploads, secondId)), 'removal stops once there is room again');

        // Writes work again, and both releases end failed (the timeout sweep finishes what no client will).
        assert.equal(await postDeviceLogs(url, live.uuid, live.deviceKey, lines.slice(0, 100)), 201);
        const again = await upload(1 * MB);
        assert.equal(again.patch?.status, 202);
        for (const release of [pushed.data, abandoned.data]) {
          await waitFor(`release ${release.id} to be failed`, async () => {
            const r = await live.api('GET', `/api/v1/releases/${release.id}`);
            return r.data.status === 'failed';
          });
        }

        // Nothing lost or corrupted: a restart on the same folder reads what was there before the fill.
        await live.server.close();
        if (testDb.dialect === 'sqlite') {
          const check = new SqliteDatabase(join(dataDir, 'flotilla.db'), { readonly: true });
          assert.equal(check.pragma('integrity_check', { simple: true }), 'ok');
          check.close();
        }
        const restarted = await startServer({
          host: '127.0.0.1',
          port: 0,
          dataDir,
          diskMinFreeBytes: 8 * MB,
          logRetention: 1_000_000,
          ...(live.databaseUrl ? { databaseUrl: live.databaseUrl } : {}),
        });
        try {
          const env = await exchange(`${restarted.url}/api/v1/fleets/${live.slug}/env`, 'GET', user);
          assert.ok(env.data.items.some((v: { name: string; value: string }) => v.name === 'KEEP' && v.value === 'me'));
          const logs = await exchange(`${restarted.url}/api/v1/devices/${live.uuid}/logs?tail=100000`, 'GET', user);
          assert.ok(logs.data.items.some((l: { message: string }) => l.message === 'before the fill'));
          const blob = await exchange(`${restarted.url}/v2/${repo}/blobs/${sha256(earlyBlob)}`, 'GET', registryAuth);
          assert.equal(blob.status, 200);
          assert.equal(blob.data, earlyBlob.toString());
          assert.equal((await exchange(`${restarted.url}/healthz`, 'GET', {})).status, 200);
        } finally {
          await restarted.close();
        }
        console.log(
          `fault: full disk (${testDb.label}): 64 MB tmpfs, ${filledMb.toFixed(1)} MB of uploads filled it in ${t1 - t0} ms; ` +
            `answers while full ${JSON.stringify(seen)}; healthz 200 again ${recoverMs} ms after the uploads were abandoned`,
        );
      } finally {
        await live.close();
        await disk.remove();
      }
    });
  });
}
