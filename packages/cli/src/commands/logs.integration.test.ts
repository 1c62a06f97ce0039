import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { liveServerWithDevice, postDeviceLogs } from '@flotilla/server/testing';
import { testDatabases, tempDir, waitFor } from '@flotilla/testkit';
import { CLI_MAIN, flotilla } from '../test-support/cli-runner.js';

test('flotilla logs prints the tail, filters by service, and --follow prints new lines in order', async () => {
  const live = await liveServerWithDevice(testDatabases()[0]!);
  const { server, uuid, deviceKey } = live;
  const config = await tempDir('flotilla-cli-logs-');
  try {
    assert.equal((await flotilla(config.path, ['login', '--url', server.url, '--api-key', live.apiKey])).code, 0);
    await postDeviceLogs(server.url, uuid, deviceKey, [
      { message: 'first', timestamp: Date.parse('2026-11-23T08:00:00Z'), serviceName: 'web' },
      { message: 'second', timestamp: Date.parse('2026-11-23T08:00:01Z'), serviceName: 'worker', isStdErr: true },
      { message: 'Service started', timestamp: Date.parse('2026-11-23T08:00:02Z'), isSystem: true },
    ]);

    const all = await flotilla(config.path, ['logs', uuid.slice(0, 7), '--no-color']);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual(all.stdout.trim().split('\n'), [
      '2026-11-23 08:00:00 [web] first',
      '2026-11-23 08:00:01 [worker] second',
      '2026-11-23 08:00:02 [system] Service started',
    ]);
    const worker = await flotilla(config.path, ['logs', uuid, '--service', 'worker', '--json']);
    assert.deepEqual(
      worker.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).message),
      ['second'],
    );
    const bad = await flotilla(config.path, ['logs', 'nothing-by-this-name', '--no-color']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'error: no device "nothing-by-this-name" (DEVICE_NOT_FOUND)\n');

    const child = spawn(process.execPath, [CLI_MAIN, 'logs', uuid, '--follow', '--tail', '1', '--no-color'], {
      env: { ...process.env, FLOTILLA_CONFIG_DIR: config.path },
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the tail line', () => out.includes('Service started'), { timeoutMs: 10_000 });
      const live = Array.from({ length: 10 }, (_, i) => ({
        message: `live ${i}`,
        timestamp: Date.parse('2026-11-23T08:01:00Z') + i,
        serviceName: 'web',
      }));
      await postDeviceLogs(server.url, uuid, deviceKey, live);
      await waitFor('ten live lines', () => out.includes('live 9'), { timeoutMs: 10_000 });
      const messages = out
        .trim()
        .split('\n')
        .map((l) => l.replace(/^\S+ \S+ \[[^\]]+\] /, ''));
      assert.deepEqual(messages, ['Service started', ...live.map((l) => l.message)]);
    } finally {
      child.kill('SIGINT');
    }
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    assert.equal(code, 0, 'Ctrl-C ends --follow cleanly');
  } finally {
    await live.close();
    await config.remove();
  }
});
