import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BusEvent, EventBus } from '../bus/event-bus.js';
import { PollCache } from './poll-cache.js';
import type { PollRow, PollSource } from './poll-lookup.js';

/** A bus whose notices and connection state the test decides. */
class TestBus implements EventBus {
  listening = true;
  private readonly listeners = new Set<(event: BusEvent) => void>();
  constructor(readonly shared: boolean) {}
  publish(): void {}
  subscribe(listener: (event: BusEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  emit(event: BusEvent): void {
    for (const listener of this.listeners) listener(event);
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}

/** The table the lookup reads, and how many reads it answered. */
function table(rows: Record<string, PollRow>, committed = () => true) {
  const source = {
    reads: 0,
    lookup: (uuid: string) => {
      source.reads += 1;
      const row = rows[uuid];
      return row && { ...row };
    },
    committed,
  };
  return source satisfies PollSource;
}

const row = (over: Partial<PollRow> = {}): PollRow => ({
  id: 1,
  key_hash: 'k1',
  revision: 1,
  fleet_id: 7,
  fleet_revision: 3,
  ...over,
});

test('answers from memory until a notice concerns the device or its fleet', () => {
  const rows = { a: row(), b: row({ id: 2 }) };
  const source = table(rows);
  const bus = new TestBus(false);
  const cache = new PollCache(source);
  cache.connect(bus);
  assert.deepEqual(cache.get('a'), rows.a);
  assert.deepEqual(cache.get('a'), rows.a);
  assert.equal(source.reads, 1, 'the second poll read no database');

  rows.a = row({ key_hash: 'k2' });
  bus.emit({ type: 'targets-changed', kind: 'device', id: 2 });
  assert.equal((cache.get('a') as PollRow).key_hash, 'k1', 'a notice for another device drops nothing of a');
  bus.emit({ type: 'targets-changed', kind: 'device', id: 1 });
  assert.equal((cache.get('a') as PollRow).key_hash, 'k2', 'its own notice: read again');
  assert.equal(source.reads, 2);

  rows.a = row({ key_hash: 'k2', fleet_revision: 4 });
  bus.emit({ type: 'targets-changed', kind: 'fleet', id: 7 });
  assert.equal((cache.get('a') as PollRow).fleet_revision, 4, 'a fleet notice: its devices are read again');

  delete (rows as Record<string, PollRow>).a;
  bus.emit({ type: 'targets-changed', kind: 'device', id: 1 });
  assert.equal(cache.get('a'), undefined, 'a deleted device is not found');
  assert.equal(cache.get('a'), undefined);
  assert.equal(source.reads, 5, 'nor kept as missing: a device registered a moment later is found');
});

test('not trusted before it is connected, nor while the bus does not listen; resync empties it', () => {
  const rows = { a: row() };
  const source = table(rows);
  const bus = new TestBus(true);
  const cache = new PollCache(source);
  cache.get('a');
  cache.get('a');
  assert.equal(source.reads, 2, 'unconnected: every poll reads');

  cache.connect(bus);
  cache.get('a');
  cache.get('a');
  assert.equal(source.reads, 3);

  // The bus connection dropped: whatever changed meanwhile was not heard.
  bus.listening = false;
  rows.a = row({ revision: 2 });
  assert.equal((cache.get('a') as PollRow).revision, 2, 'while the bus is down the database answers');
  assert.equal((cache.get('a') as PollRow).revision, 2);
  assert.equal(source.reads, 5, 'and nothing read meanwhile is kept');
  bus.listening = true;
  bus.emit({ type: 'resync' });
  rows.a = row({ revision: 3 });
  assert.equal((cache.get('a') as PollRow).revision, 3, 'resync forgot what was kept before the drop');
});

test('a read that a notice overtakes is answered but not kept; nor a read inside an open transaction', async () => {
  const rows = { a: row() };
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  let reads = 0;
  const bus = new TestBus(true);
  const slow: PollSource = {
    lookup: async (uuid) => {
      reads += 1;
      const read = { ...(rows as Record<string, PollRow>)[uuid]! };
      await gate;
      return read;
    },
    committed: () => true,
  };
  const cache = new PollCache(slow);
  cache.connect(bus);
  const pending = cache.get('a');
  rows.a = row({ key_hash: 'k2' });
  bus.emit({ type: 'targets-changed', kind: 'device', id: 1 });
  release();
  assert.equal((await pending)?.key_hash, 'k1', 'the read answers what it read');
  assert.equal((await cache.get('a'))?.key_hash, 'k2', 'but was not kept past the notice');
  assert.equal(reads, 2);

  let open = true;
  const source = table({ a: row() }, () => !open);
  const inTx = new PollCache(source);
  inTx.connect(new TestBus(false));
  inTx.get('a');
  inTx.get('a');
  assert.equal(source.reads, 2, 'read while a write transaction is open: may be rolled back, not kept');
  open = false;
  inTx.get('a');
  inTx.get('a');
  assert.equal(source.reads, 3);
});

test('entries older than maxAgeMs are read again; at most maxEntries are kept, the oldest read going first', async () => {
  const rows = { a: row(), b: row({ id: 2 }), c: row({ id: 3 }) };
  const source = table(rows);
  const aging = new PollCache(source, { maxAgeMs: 20 });
  aging.connect(new TestBus(true));
  aging.get('a');
  aging.get('a');
  assert.equal(source.reads, 1);
  await new Promise((resolve) => setTimeout(resolve, 30));
  aging.get('a');
  assert.equal(source.reads, 2);

  const counted = table(rows);
  const small = new PollCache(counted, { maxEntries: 2 });
  small.connect(new TestBus(false));
  small.get('a');
  small.get('b');
  small.get('c');
  assert.equal(small.size, 2);
  small.get('b');
  small.get('c');
  assert.equal(counted.reads, 3, 'b and c kept');
  small.get('a');
  assert.equal(counted.reads, 4, 'a, the oldest, went');
});
