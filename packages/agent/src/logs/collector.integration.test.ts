import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceLogLine } from '@flotilla/protocol';
import { ensureBusyboxImage, run, waitFor } from '@flotilla/testkit';
import { LogCollector } from './collector.js';
import { DockerLogSource } from './docker-log-source.js';

test('collects a container’s stdout and stderr in order, and resumes after a restart without repeating', async () => {
  const image = await ensureBusyboxImage();
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-collector-'));
  const name = `flotilla-logtest-${process.pid}-${Date.now()}`;
  const script =
    'i=0; while [ $i -lt 5 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); sleep 0.05; done; sleep 1000';
  const { stdout } = await run('docker', ['run', '-d', '--name', name, image, 'sh', '-c', script]);
  const containerId = stdout.trim();
  const positions = join(dir, 'positions.json');
  try {
    const lines: DeviceLogLine[] = [];
    const first = new LogCollector(new DockerLogSource(), (l) => lines.push(l), positions);
    first.system('Service main started');
    first.sync([{ containerId, serviceName: 'main', serviceId: 11 }]);
    await waitFor('10 lines', () => lines.length >= 11, { timeoutMs: 15_000 });
    first.stop();
    const out = lines.filter((l) => !l.isSystem && !l.isStdErr).map((l) => l.message);
    const err = lines.filter((l) => l.isStdErr).map((l) => l.message);
    assert.deepEqual(out, ['out 0', 'out 1', 'out 2', 'out 3', 'out 4']);
    assert.deepEqual(err, ['err 0', 'err 1', 'err 2', 'err 3', 'err 4']);
    assert.equal(lines[0]!.isSystem, true);
    assert.ok(lines.every((l) => l.isSystem || (l.serviceName === 'main' && l.serviceId === 11)));
    const stamps = lines.filter((l) => !l.isSystem).map((l) => l.timestamp);
    assert.deepEqual(
      stamps,
      [...stamps].sort((a, b) => a - b),
      'timestamps ascend',
    );

    await run('docker', ['exec', name, 'sh', '-c', 'echo "after restart" > /proc/1/fd/1']);
    const again: DeviceLogLine[] = [];
    const second = new LogCollector(new DockerLogSource(), (l) => again.push(l), positions);
    second.sync([{ containerId, serviceName: 'main' }]);
    await waitFor('the new line', () => again.some((l) => l.message === 'after restart'), { timeoutMs: 15_000 });
    // Nothing else may arrive: a quiet moment after the new line is what this checks.
    await new Promise((resolve) => setTimeout(resolve, 300));
    second.stop();
    assert.deepEqual(
      again.map((l) => l.message),
      ['after restart'],
      'nothing collected before the restart is repeated',
    );
  } finally {
    await run('docker', ['rm', '-f', name]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

test('collects a TTY container’s output (no frames, CRLF line ends) as clean lines', async () => {
  const image = await ensureBusyboxImage();
  const name = `flotilla-logtest-tty-${process.pid}-${Date.now()}`;
  const { stdout } = await run('docker', [
    'run',
    '-d',
    '-t',
    '--name',
    name,
    image,
    'sh',
    '-c',
    'echo "first line"; printf "second\\n"; echo "to stderr" >&2; sleep 1000',
  ]);
  try {
    const lines: DeviceLogLine[] = [];
    const collector = new LogCollector(new DockerLogSource(), (l) => lines.push(l), undefined);
    collector.sync([{ containerId: stdout.trim(), serviceName: 'tty' }]);
    await waitFor('3 lines', () => lines.length >= 3, { timeoutMs: 15_000 });
    collector.stop();
    assert.deepEqual(
      lines.map((l) => [l.message, l.isStdErr]),
      [
        ['first line', false],
        ['second', false],
        ['to stderr', false],
      ],
    );
  } finally {
    await run('docker', ['rm', '-f', name]).catch(() => undefined);
  }
});
