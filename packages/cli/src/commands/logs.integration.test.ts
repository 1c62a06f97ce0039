import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { startServer } from '@flotilla/server';
import { tempDir, waitFor } from '@flotilla/testkit';
import { CLI_MAIN, flotilla } from '../test-support/cli-runner.js';

function shipLogs(url: string, uuid: string, key: string, lines: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/device/v2/${uuid}/log-stream`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(gzipSync(lines.map((l) => JSON.stringify(l)).join('\n') + '\n'));
  });
}

test('flotilla logs prints the tail, filters by service, and --follow prints new lines in order', async () => {
  const server = await startServer({ host: '127.0.0.1', port: 0 });
  const config = await tempDir('flotilla-cli-logs-');
  try {
    const apiKey = server.admin!.apiKey;
    assert.equal((await flotilla(config.path, ['login', '--url', server.url, '--api-key', apiKey])).code, 0);
    const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
    const fleet = (await (await fetch(`${server.url}/api/v1/fleets`, { method: 'POST', headers, body: JSON.stringify({ name: 'logs', slug: 'logs' }) })).json()) as { id: number };
    const pk = (await (await fetch(`${server.url}/api/v1/fleets/logs/provisioning-keys`, { method: 'POST', headers, body: '{}' })).json()) as { key: string };
    const uuid = generateDeviceUuid();
    const deviceKey = generateKey();
    await fetch(`${server.url}/device/register`, { method: 'POST', headers: { authorization: `Bearer ${pk.key}`, 'content-type': 'application/json' }, body: JSON.stringify({ application: fleet.id, uuid, device_type: 'generic-amd64', api_key: deviceKey }) });
    await shipLogs(server.url, uuid, deviceKey, [
      { message: 'first', timestamp: Date.parse('2026-11-23T08:00:00Z'), serviceName: 'web' },
      { message: 'second', timestamp: Date.parse('2026-11-23T08:00:01Z'), serviceName: 'worker', isStdErr: true },
      { message: 'Service started', timestamp: Date.parse('2026-11-23T08:00:02Z'), isSystem: true },
    ]);

    const all = await flotilla(config.path, ['logs', uuid.slice(0, 7), '--no-color']);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout.trim().split('\n'), ['2026-11-23 08:00:00 [web] first', '2026-11-23 08:00:01 [worker] second', '2026-11-23 08:00:02 [system] Service started']);
    const worker = await flotilla(config.path, ['logs', uuid, '--service', 'worker', '--json']);
    assert.deepEqual(worker.stdout.trim().split('\n').map((l) => JSON.parse(l).message), ['second']);
    const bad = await flotilla(config.path, ['logs', 'nothex!', '--no-color']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: .*\(VALIDATION_FAILED\)\n$/);

    const child = spawn(process.execPath, [CLI_MAIN, 'logs', uuid, '--follow', '--tail', '1', '--no-color'], { env: { ...process.env, FLOTILLA_CONFIG_DIR: config.path } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the tail line', () => out.includes('Service started'), { timeoutMs: 10_000 });
      const live = Array.from({ length: 10 }, (_, i) => ({ message: `live ${i}`, timestamp: Date.parse('2026-11-23T08:01:00Z') + i, serviceName: 'web' }));
      await shipLogs(server.url, uuid, deviceKey, live);
      await waitFor('ten live lines', () => out.includes('live 9'), { timeoutMs: 10_000 });
      const messages = out.trim().split('\n').map((l) => l.replace(/^\S+ \S+ \[[^\]]+\] /, ''));
      assert.deepEqual(messages, ['Service started', ...live.map((l) => l.message)]);
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    assert.equal(code, 0, 'Ctrl-C ends --follow cleanly');
  } finally {
    await server.close();
    await config.remove();
  }
});
