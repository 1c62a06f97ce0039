import assert from 'node:assert/strict';
import { appendFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceLogLine } from '@flotilla/protocol';
import { DiskLogQueue } from './disk-log-queue.js';
import { MemoryLogQueue, lineBytes, type LogQueue } from './log-queue.js';

const line = (n: number): DeviceLogLine => ({
  message: `line ${n} ${'x'.repeat(40)}`,
  timestamp: 1_000 + n,
  serviceName: 'main',
});
const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as DeviceLogLine);
const messages = (lines: string[]) => parsed(lines).map((l) => l.message.split(' ').slice(0, 2).join(' '));

async function withDir(fn: (dir: string) => Promise<void> | void) {
  const dir = await mkdtemp(join(tmpdir(), 'flotilla-logq-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const kinds: { name: string; make: (dir: string, maxBytes: number) => LogQueue }[] = [
  { name: 'memory', make: (_dir, maxBytes) => new MemoryLogQueue(maxBytes, () => 42) },
  { name: 'disk', make: (dir, maxBytes) => new DiskLogQueue(dir, maxBytes, () => 42) },
];

for (const kind of kinds) {
  test(`${kind.name}: take does not remove; ack removes exactly what was taken`, () =>
    withDir((dir) => {
      const q = kind.make(dir, 1 << 20);
      for (let i = 0; i < 5; i += 1) q.push(line(i));
      assert.deepEqual(messages(q.take(3)), ['line 0', 'line 1', 'line 2']);
      assert.deepEqual(messages(q.take(3)), ['line 0', 'line 1', 'line 2'], 'unacknowledged lines are offered again');
      q.ack(2);
      assert.deepEqual(messages(q.take(10)), ['line 2', 'line 3', 'line 4']);
      q.ack(3);
      assert.equal(q.size(), 0);
      assert.deepEqual(q.take(10), []);
      q.close();
    }));

  test(`${kind.name}: overflow drops the oldest lines and says how many, once`, () =>
    withDir((dir) => {
      const per = lineBytes(line(0));
      const q = kind.make(dir, per * 40);
      for (let i = 0; i < 400; i += 1) q.push(line(i));
      const batch = parsed(q.take(1_000));
      const notice = batch[0]!;
      assert.equal(notice.isSystem, true);
      const dropped = Number(/Suppressed (\d+) message/.exec(notice.message)?.[1]);
      const kept = batch.slice(1);
      assert.ok(dropped > 0 && kept.length > 0);
      assert.equal(dropped + kept.length, 400, 'every line is either kept or counted as suppressed');
      assert.equal(kept.at(-1)!.message, line(399).message, 'the newest lines are the ones kept');
      q.ack(batch.length);
      assert.deepEqual(q.take(10), [], 'the notice is not repeated after it was delivered');
      q.close();
    }));
}

test('memory: lines dropped between take and ack are not acknowledged twice', () => {
  const per = lineBytes(line(0));
  const q = new MemoryLogQueue(per * 10, () => 1);
  for (let i = 0; i < 10; i += 1) q.push(line(i));
  const taken = q.take(5);
  for (let i = 10; i < 13; i += 1) q.push(line(i)); // drops lines 0-2 (taken, not yet acked)
  q.ack(taken.length);
  assert.deepEqual(messages(q.take(100)).slice(1), [
    'line 5',
    'line 6',
    'line 7',
    'line 8',
    'line 9',
    'line 10',
    'line 11',
    'line 12',
  ]);
});

test('disk: a restart resends exactly what was not acknowledged', () =>
  withDir((dir) => {
    const q = new DiskLogQueue(dir, 1 << 20);
    for (let i = 0; i < 6; i += 1) q.push(line(i));
    q.take(4);
    q.ack(4);
    q.push(line(6));
    q.close();
    const again = new DiskLogQueue(dir, 1 << 20);
    assert.deepEqual(messages(again.take(10)), ['line 4', 'line 5', 'line 6']);
    again.close();
  }));

test('disk: a torn last line (power cut mid-write) is counted, not shipped, and later lines still flow', () =>
  withDir((dir) => {
    const q = new DiskLogQueue(dir, 1 << 20);
    q.push(line(0));
    q.close();
    const [segment] = readdirSync(dir).filter((f) => f.endsWith('.ndjson'));
    appendFileSync(join(dir, segment!), '{"message":"half a li\n');
    const again = new DiskLogQueue(dir, 1 << 20);
    again.push(line(1));
    const batch = again.take(10);
    assert.match(parsed(batch)[0]!.message, /Suppressed 1 message/);
    assert.deepEqual(messages(batch.slice(1)), ['line 0', 'line 1']);
    again.close();
  }));

test('disk: stays within its byte budget across segments and removes delivered segments', () =>
  withDir((dir) => {
    const per = lineBytes(line(0));
    const budget = per * 200;
    const q = new DiskLogQueue(dir, budget);
    for (let i = 0; i < 2_000; i += 1) q.push(line(i));
    const files = readdirSync(dir).filter((f) => f.endsWith('.ndjson'));
    assert.ok(files.length > 1, 'written in several segments');
    let total = 0;
    for (;;) {
      const batch = parsed(q.take(50));
      if (batch.length === 0) break;
      total += batch.filter((l) => !l.isSystem).length;
      q.ack(batch.length);
    }
    assert.ok(total <= 200 && total > 100, `kept ${total} lines within a budget of 200`);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.ndjson')).length, 1, 'delivered segments are deleted');
    q.close();
  }));
