import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlotillaError } from '@flotilla/protocol';
import { emit, formatDetails, formatError, formatTable } from './output.js';

test('tables: upper-case headers, aligned columns, "-" for empty cells, no trailing spaces', () => {
  assert.equal(
    formatTable(
      ['slug', 'devices'],
      [
        ['kitchen', 3],
        ['garden-long', null],
      ],
    ),
    'SLUG         DEVICES\nkitchen      3\ngarden-long  -\n',
  );
  assert.equal(formatTable(['a'], []), 'nothing to show\n');
});

test('details line up', () => {
  assert.equal(
    formatDetails([
      ['id', 1],
      ['long key', 'x'],
      ['none', undefined],
    ]),
    'id:       1\nlong key: x\nnone:     -\n',
  );
});

test('emit prints JSON with --json, the human form otherwise', () => {
  let out = '';
  const sink = (json: boolean) => ({ json, out: (t: string) => (out += t), err: () => undefined });
  emit(sink(true), { a: 1 }, () => 'human\n');
  assert.equal(out, '{\n  "a": 1\n}\n');
  out = '';
  emit(sink(false), { a: 1 }, () => 'human\n');
  assert.equal(out, 'human\n');
});

test('errors: message and code, never a stack', () => {
  assert.deepEqual(formatError(new FlotillaError('FLEET_NOT_FOUND', 'no fleet x')), {
    text: 'error: no fleet x (FLEET_NOT_FOUND)',
    code: 'FLEET_NOT_FOUND',
  });
  assert.deepEqual(formatError(new Error('boom')), { text: 'error: boom (INTERNAL)', code: 'INTERNAL' });
  assert.deepEqual(formatError(Object.assign(new Error('locked'), { code: 'UPDATE_LOCKED' })), {
    text: 'error: locked (UPDATE_LOCKED)',
    code: 'UPDATE_LOCKED',
  });
  assert.equal(formatError('plain').text, 'error: plain (INTERNAL)');
});
