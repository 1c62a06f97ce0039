import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RowCache } from './row-cache.js';

interface Row {
  uuid: string;
  name: string;
}
const rows = (from: number, count: number): Row[] =>
  Array.from({ length: count }, (_, i) => ({ uuid: `u${from + i}`, name: `d${from + i}` }));

function filled(total: number, pages: number[], pageSize = 10, maxPages = 100): RowCache<Row> {
  const cache = new RowCache<Row>({ pageSize, maxPages });
  for (const page of pages) {
    const generation = cache.startFetch(page);
    const count = Math.max(0, Math.min(pageSize, total - page * pageSize));
    assert.ok(cache.fill(generation, page, rows(page * pageSize, count), total));
  }
  return cache;
}

test('before the first answer only the first page is asked for', () => {
  const cache = new RowCache<Row>({ pageSize: 10, maxPages: 5 });
  assert.deepEqual(cache.pagesToFetch(0, 40), [0]);
  cache.startFetch(0);
  assert.deepEqual(cache.pagesToFetch(0, 40), [], 'a page on its way is not asked for twice');
});

test('scrolling asks for the missing pages of the visible rows, within the total', () => {
  const cache = filled(10_000, [0]);
  assert.equal(cache.total, 10_000);
  assert.deepEqual(cache.pagesToFetch(0, 25), [1, 2]);
  assert.deepEqual(cache.pagesToFetch(9_985, 10_020), [998, 999], 'nothing past the last row');
  const small = filled(15, [0]);
  assert.deepEqual(small.pagesToFetch(0, 50), [1]);
  assert.deepEqual(filled(0, [0]).pagesToFetch(0, 50), [], 'an empty result asks for nothing more');
});

test('an empty result that went stale is asked for again (a device joined an empty fleet)', () => {
  const cache = filled(0, [0]);
  cache.invalidate();
  assert.deepEqual(cache.pagesToFetch(0, 0), [0]);
  const generation = cache.startFetch(0);
  assert.ok(cache.fill(generation, 0, rows(0, 1), 1));
  assert.equal(cache.rowAt(0)?.name, 'd0');
  assert.deepEqual(cache.pagesToFetch(0, 0), []);
});

test('rowAt finds a row by its index across pages', () => {
  const cache = filled(35, [0, 3]);
  assert.equal(cache.rowAt(0)?.name, 'd0');
  assert.equal(cache.rowAt(9)?.name, 'd9');
  assert.equal(cache.rowAt(10), undefined, 'page 1 is not here');
  assert.equal(cache.rowAt(34)?.name, 'd34');
});

test('an answer to the query before a reset is dropped', () => {
  const cache = new RowCache<Row>({ pageSize: 10, maxPages: 5 });
  const old = cache.startFetch(0);
  cache.reset();
  assert.equal(cache.fill(old, 0, rows(0, 10), 10), false);
  assert.equal(cache.rowAt(0), undefined);
  assert.equal(cache.total, null);
  assert.deepEqual(cache.pagesToFetch(0, 5), [0], 'the new query asks again');
  cache.fetchFailed(old, 0);
  const current = cache.startFetch(0);
  cache.fetchFailed(current, 0);
  assert.deepEqual(cache.pagesToFetch(0, 5), [0], 'a failed fetch may be retried');
});

test('a live update replaces the row in place, and says when no page holds the device', () => {
  const cache = filled(20, [0, 1]);
  assert.equal(cache.update({ uuid: 'u13', name: 'renamed' }), true);
  assert.equal(cache.rowAt(13)?.name, 'renamed');
  assert.equal(cache.update({ uuid: 'u99', name: 'elsewhere' }), false);
});

test('a removed device vanishes at once and every page is refetched, still shown meanwhile', () => {
  const cache = filled(20, [0, 1]);
  cache.remove('u3');
  assert.equal(cache.rowAt(3), undefined);
  assert.equal(cache.rowAt(4)?.name, 'd4', 'stale rows stay on screen');
  assert.deepEqual(cache.pagesToFetch(0, 19), [0, 1]);
  const generation = cache.startFetch(0);
  cache.fill(
    generation,
    0,
    rows(0, 10)
      .filter((r) => r.uuid !== 'u3')
      .concat(rows(10, 1)),
    19,
  );
  assert.equal(cache.rowAt(3)?.name, 'd4');
  assert.deepEqual(cache.pagesToFetch(0, 18), [1]);
});

test('the cache holds at most maxPages pages, dropping the farthest from the latest', () => {
  const cache = filled(1_000, [0, 1, 2, 3, 50], 10, 3);
  assert.equal(cache.heldPages, 3);
  assert.equal(cache.rowAt(505)?.name, 'd505');
  assert.equal(cache.rowAt(35)?.name, 'd35');
  assert.equal(cache.rowAt(5), undefined, 'page 0 was the farthest');
});

test('a page size or bound below one is refused', () => {
  assert.throws(() => new RowCache({ pageSize: 0, maxPages: 1 }), RangeError);
});

test('an answer longer than a page keeps only the page size, so later rows do not shift', () => {
  const cache = new RowCache<Row>({ pageSize: 10, maxPages: 5 });
  const generation = cache.startFetch(0);
  cache.fill(generation, 0, rows(0, 25), 25);
  assert.equal(cache.rowAt(9)?.name, 'd9');
  assert.equal(cache.rowAt(10), undefined);
  assert.deepEqual(cache.pagesToFetch(0, 24), [1, 2]);
});
