import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { FlotillaError } from '@flotilla/protocol';
import { MAX_DEPTH, parseKey, parseQueryOptions } from './parser.js';

const refused = (f: () => unknown) =>
  assert.throws(f, (e: unknown) => e instanceof FlotillaError && e.code === 'INVALID_ODATA_QUERY');

describe('OData parser', () => {
  test('parses the string functions, nested and inside lambdas', () => {
    const { filter } = parseQueryOptions({
      $filter: "startswith(tolower(device_name),'ab') and device_tag/any(d:substringof('x',d/value))",
    });
    assert.deepEqual(filter, {
      kind: 'and',
      left: {
        kind: 'call',
        name: 'startswith',
        args: [
          { kind: 'call', name: 'tolower', args: [{ kind: 'path', path: ['device_name'] }] },
          { kind: 'literal', value: 'ab' },
        ],
      },
      right: {
        kind: 'lambda',
        op: 'any',
        path: ['device_tag'],
        alias: 'd',
        body: {
          kind: 'call',
          name: 'substringof',
          args: [
            { kind: 'literal', value: 'x' },
            { kind: 'path', path: ['d', 'value'] },
          ],
        },
      },
    });
    refused(() => parseQueryOptions({ $filter: 'length(uuid) eq 32' }));
    refused(() => parseQueryOptions({ $filter: "startswith(uuid,'a'" }));
    refused(() =>
      parseQueryOptions({ $filter: `${'tolower('.repeat(MAX_DEPTH + 1)}uuid${')'.repeat(MAX_DEPTH + 1)} eq 'a'` }),
    );
  });

  test('parses what pinejs-client sends', () => {
    const options = parseQueryOptions({
      $filter: "belongs_to__application/any(bta:bta/organization eq 7) and not (status eq 'it''s') or id in (1, 2)",
      $select: 'id,uuid',
      $expand:
        'belongs_to__application($select=id,slug;$expand=owns__release($top=1;$orderby=created_at desc)),owns__device/$count($filter=is_online eq true)',
      $orderby: 'device_name asc,id desc',
      $top: '5',
      $skip: '10',
    });
    assert.deepEqual(options.select, ['id', 'uuid']);
    assert.deepEqual(options.orderby, [
      { path: ['device_name'], descending: false },
      { path: ['id'], descending: true },
    ]);
    assert.equal(options.top, 5);
    assert.equal(options.skip, 10);
    assert.equal(options.filter?.kind, 'or');
    const [first, second] = options.expand ?? [];
    assert.equal(first?.navigation, 'belongs_to__application');
    assert.equal(first?.options.expand?.[0]?.options.top, 1);
    assert.equal(second?.count, true);
    const and = options.filter?.kind === 'or' ? options.filter.left : undefined;
    assert.equal(and?.kind, 'and');
    if (and?.kind === 'and') {
      assert.deepEqual(and.left, {
        kind: 'lambda',
        op: 'any',
        path: ['belongs_to__application'],
        alias: 'bta',
        body: {
          kind: 'compare',
          op: 'eq',
          left: { kind: 'path', path: ['bta', 'organization'] },
          right: { kind: 'literal', value: 7 },
        },
      });
      assert.deepEqual(and.right, {
        kind: 'not',
        expr: {
          kind: 'compare',
          op: 'eq',
          left: { kind: 'path', path: ['status'] },
          right: { kind: 'literal', value: "it's" },
        },
      });
    }
  });

  test('keys: id, quoted string, alternate key', () => {
    assert.deepEqual(parseKey('12'), { field: undefined, value: 12 });
    assert.deepEqual(parseKey("'o/f'"), { field: undefined, value: 'o/f' });
    assert.deepEqual(parseKey("uuid='abc'"), { field: 'uuid', value: 'abc' });
    refused(() => parseKey("uuid='a' or 1 eq 1"));
  });

  test('refuses malformed, unsupported and over-deep queries with INVALID_ODATA_QUERY', () => {
    for (const $filter of [
      "name eq 'open",
      'id eq',
      'length(name) eq 1',
      'id eq 1)',
      '(id eq 1',
      'id eq 1; drop table devices',
      `${'('.repeat(MAX_DEPTH + 1)}id eq 1${')'.repeat(MAX_DEPTH + 1)}`,
      `${'not '.repeat(10_000)}id eq 1`,
      'id eq 99999999999999999999',
    ])
      refused(() => parseQueryOptions({ $filter }));
    refused(() => parseQueryOptions({ $filter: 'id eq 1'.repeat(5000) }));
    refused(() => parseQueryOptions({ $top: '-1' }));
    refused(() => parseQueryOptions({ $apply: 'x' }));
    refused(() => parseQueryOptions({ '@a': "'x'" }));
    refused(() => parseQueryOptions({ $filter: ['id eq 1', 'id eq 2'] }));
    refused(() => parseQueryOptions({ $expand: 'a($expand=b($expand=c($expand=d($expand='.repeat(10) }));
  });

  test('any string: a parsed tree or INVALID_ODATA_QUERY, never another error', () => {
    const alphabet = fc.constantFrom(...'()/,:;=\'$ abcdeiloqntyr0123456789-_*@\\"'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: alphabet, maxLength: 200 })), (text) => {
        for (const name of ['$filter', '$expand', '$select', '$orderby', '$top']) {
          try {
            parseQueryOptions({ [name]: text });
          } catch (e) {
            if (!(e instanceof FlotillaError) || e.code !== 'INVALID_ODATA_QUERY') throw e;
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
