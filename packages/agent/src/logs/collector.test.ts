import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceLogLine } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import { LogCollector } from './collector.js';
import type { LogSource, RawLogLine } from './docker-log-source.js';

/** A source that records where each follow starts and plays `lines` once. */
function scriptedSource(lines: RawLogLine[]): LogSource & { starts: (string | undefined)[] } {
  const starts: (string | undefined)[] = [];
  return {
    starts,
    async follow(_id, since, onLine, signal) {
      starts.push(since);
      if (starts.length === 1) for (const line of lines) onLine(line);
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    },
  };
}

test('positions saved by the earlier format (nanosecond counts) resume at the same instant; new ones are engine stamps', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-positions-'));
  try {
    const file = join(dir, 'positions.json');
    await writeFile(file, JSON.stringify({ c1: '1795423201000000042', broken: 'x', c2: 12 }));
    const source = scriptedSource([
      {
        stamp: '2026-11-23T08:40:02.5Z',
        timestampMs: Date.parse('2026-11-23T08:40:02.5Z'),
        message: 'hi',
        isStdErr: true,
      },
    ]);
    const got: DeviceLogLine[] = [];
    const collector = new LogCollector(source, (line) => got.push(line), file);
    collector.sync([{ containerId: 'c1', serviceName: 'main', serviceId: 7 }]);
    await waitFor('the line', () => got.length === 1);
    assert.deepEqual(source.starts, ['2026-11-23T08:40:01.000000042Z']);
    assert.deepEqual(got, [
      {
        message: 'hi',
        timestamp: Date.parse('2026-11-23T08:40:02.5Z'),
        isStdErr: true,
        serviceName: 'main',
        serviceId: 7,
      },
    ]);
    collector.stop();
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { c1: '2026-11-23T08:40:02.5Z' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
