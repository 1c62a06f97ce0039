import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type EventSourceLike, LiveStream } from './live-stream.js';

/** Stands in for the browser's EventSource: the test fires its events by hand. */
class FakeSource implements EventSourceLike {
  closed = false;
  private readonly listeners = new Map<string, ((event: { data?: unknown }) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (event: { data?: unknown }) => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), listener]);
  }
  close(): void {
    this.closed = true;
  }
  fire(type: string, data?: string): void {
    for (const listener of this.listeners.get(type) ?? []) listener({ data });
  }
}

test('events reach their handlers; a broken stream reconnects and the owner is told to refetch', async () => {
  const sources: FakeSource[] = [];
  const seen: string[] = [];
  const stream = new LiveStream({
    url: '/api/v1/fleets/f/events',
    events: { device: (data) => seen.push(`device ${data}`) },
    onOpen: (reconnected) => seen.push(reconnected ? 'refetch' : 'open'),
    onDown: () => seen.push('down'),
    open: (url) => {
      const source = new FakeSource(url);
      sources.push(source);
      return source;
    },
    retryDelaysMs: [5, 10],
  });
  stream.start();
  sources[0]!.fire('open');
  sources[0]!.fire('device', '{"uuid":"a"}');
  sources[0]!.fire('other', 'ignored');
  sources[0]!.fire('error');
  assert.equal(sources[0]!.closed, true);
  sources[0]!.fire('device', '{"uuid":"late"}');
  await sleep(30);
  assert.equal(sources.length, 2, 'one new connection after the delay');
  sources[1]!.fire('open');
  sources[1]!.fire('device', '{"uuid":"b"}');
  assert.deepEqual(seen, ['open', 'device {"uuid":"a"}', 'down', 'refetch', 'device {"uuid":"b"}']);
  stream.close();
  assert.equal(sources[1]!.closed, true);
});

test('closing while a retry waits cancels it', async () => {
  const sources: FakeSource[] = [];
  const stream = new LiveStream({
    url: '/x',
    events: {},
    open: (url) => {
      const source = new FakeSource(url);
      sources.push(source);
      return source;
    },
    retryDelaysMs: [5],
  });
  stream.start();
  sources[0]!.fire('error');
  stream.close();
  await sleep(20);
  assert.equal(sources.length, 1);
});
