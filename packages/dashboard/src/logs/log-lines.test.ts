import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogEntry } from '@flotilla/protocol';
import { SYSTEM_SOURCE, appendBounded, filterLines, linesAsText, toLogLine } from './log-lines.js';

function entry(message: string, serviceName: string | null, timestamp = 0): LogEntry {
  return { timestamp, createdAt: timestamp, message, isSystem: serviceName === null, isStdErr: false, serviceName };
}

test('appendBounded keeps the newest lines, never more than the bound', () => {
  assert.deepEqual(appendBounded([1, 2, 3], [4], 3), [2, 3, 4]);
  assert.deepEqual(appendBounded([1], [2], 3), [1, 2]);
  assert.deepEqual(appendBounded([1, 2], [3, 4, 5, 6], 3), [4, 5, 6]);
  assert.deepEqual(appendBounded([], [], 3), []);
});

test('filterLines matches the service, the system source, and text without escape codes', () => {
  const lines = [
    entry('\u001b[32mready\u001b[0m on :80', 'web'),
    entry('Applying release', null),
    entry('READY to serve', 'db'),
  ].map((e, i) => toLogLine(i, e));
  const texts = (service: string, search: string) => filterLines(lines, { service, search }).map((l) => l.text);
  assert.deepEqual(texts('', ''), ['ready on :80', 'Applying release', 'READY to serve']);
  assert.deepEqual(texts('web', ''), ['ready on :80']);
  assert.deepEqual(texts(SYSTEM_SOURCE, ''), ['Applying release']);
  // The escape code between "ready" and its colour does not hide the match; case does not matter.
  assert.deepEqual(texts('', 'Ready'), ['ready on :80', 'READY to serve']);
  assert.deepEqual(texts('', '32m'), []);
  assert.deepEqual(texts('db', 'release'), []);
});

test('linesAsText writes one line per entry with its time and source', () => {
  const text = linesAsText([
    toLogLine(0, entry('\u001b[1mhi\u001b[0m', 'web', 0)),
    toLogLine(1, entry('x', null, 1000)),
  ]);
  assert.equal(text, `1970-01-01T00:00:00.000Z [web] hi\n1970-01-01T00:00:01.000Z [${SYSTEM_SOURCE}] x\n`);
});
