import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_FILTERS,
  filtersFromParams,
  filtersKey,
  filtersToParams,
  listQuery,
  sortDirection,
  toggleSort,
} from './device-query.js';

test('filters survive a trip through the URL, and defaults are left out of it', () => {
  const filters = { search: 'kiosk 12', status: 'failed', release: 'abcdef1', sort: '-lastSeen' } as const;
  const params = filtersToParams(filters);
  assert.equal(params.toString(), 'search=kiosk+12&status=failed&release=abcdef1&sort=-lastSeen');
  assert.deepEqual(filtersFromParams(params), filters);
  assert.equal(filtersToParams(DEFAULT_FILTERS).toString(), '');
});

test('values the protocol refuses fall back to defaults instead of breaking the table', () => {
  const params = new URLSearchParams({ status: 'exploded', sort: 'uuid', release: 'not-hex', search: 'x'.repeat(300) });
  const filters = filtersFromParams(params);
  assert.deepEqual(
    { ...filters, search: filters.search.length },
    { search: 100, status: '', release: '', sort: 'name' },
  );
});

test('listQuery sends only the filters in use, trimmed, with the page window', () => {
  assert.deepEqual(listQuery('kitchen', DEFAULT_FILTERS, 0, 100), {
    fleet: 'kitchen',
    sort: 'name',
    limit: 100,
    offset: 0,
  });
  assert.deepEqual(
    listQuery('kitchen', { search: '  pi ', status: 'offline', release: 'abc1234', sort: '-name' }, 200, 50),
    {
      fleet: 'kitchen',
      search: 'pi',
      status: 'offline',
      release: 'abc1234',
      sort: '-name',
      limit: 50,
      offset: 200,
    },
  );
  assert.throws(() => listQuery('kitchen', DEFAULT_FILTERS, 0, 5000), /limit|1000/i);
});

test('a header click flips the same column and starts others in their natural direction', () => {
  const cases: [Parameters<typeof toggleSort>[0], Parameters<typeof toggleSort>[1], string][] = [
    ['name', 'name', '-name'],
    ['-name', 'name', 'name'],
    ['name', 'lastSeen', '-lastSeen'],
    ['-lastSeen', 'lastSeen', 'lastSeen'],
    ['-lastSeen', 'status', 'status'],
    ['status', 'created', '-created'],
  ];
  for (const [current, column, want] of cases) assert.equal(toggleSort(current, column), want, `${current} ${column}`);
  assert.equal(sortDirection('-lastSeen', 'lastSeen'), 'descending');
  assert.equal(sortDirection('name', 'name'), 'ascending');
  assert.equal(sortDirection('name', 'status'), 'none');
});

test('the result-set key ignores surrounding blanks of the search and changes with every filter', () => {
  const base = filtersKey('f', DEFAULT_FILTERS);
  assert.equal(filtersKey('f', { ...DEFAULT_FILTERS, search: '  ' }), base);
  const others = [
    filtersKey('g', DEFAULT_FILTERS),
    filtersKey('f', { ...DEFAULT_FILTERS, search: 'a' }),
    filtersKey('f', { ...DEFAULT_FILTERS, status: 'online' }),
    filtersKey('f', { ...DEFAULT_FILTERS, release: 'abcdef1' }),
    filtersKey('f', { ...DEFAULT_FILTERS, sort: '-name' }),
  ];
  assert.equal(new Set([base, ...others]).size, 6);
});
