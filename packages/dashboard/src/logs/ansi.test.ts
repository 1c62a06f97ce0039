import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAnsi, stripAnsi } from './ansi.js';

const ESC = '\u001b';

test('stripAnsi removes colours, cursor moves, titles and control characters, and keeps tabs', () => {
  const cases: [string, string][] = [
    ['plain', 'plain'],
    [`${ESC}[31mred${ESC}[0m`, 'red'],
    [`${ESC}[1;38;5;196mx${ESC}[m`, 'x'],
    [`${ESC}[2K${ESC}[1Gprogress 50%\r`, 'progress 50%'],
    [`${ESC}]0;window title\u0007after`, 'after'],
    [`${ESC}]8;;http://x${ESC}\\link`, 'link'],
    ['a\tb\u0000c\u0008d', 'a\tbcd'],
    [`<script>alert(1)</script>${ESC}[0m`, '<script>alert(1)</script>'],
  ];
  for (const [input, want] of cases) assert.equal(stripAnsi(input), want, JSON.stringify(input));
});

test('parseAnsi maps SGR codes to class names and keeps the text as text', () => {
  assert.deepEqual(parseAnsi('hello'), [{ text: 'hello', classes: '' }]);
  assert.deepEqual(parseAnsi(`${ESC}[1;31mERR${ESC}[0m ok`), [
    { text: 'ERR', classes: 'ansi-fg-1 ansi-bold' },
    { text: ' ok', classes: '' },
  ]);
  assert.deepEqual(parseAnsi(`${ESC}[92mhi${ESC}[39m${ESC}[44m bg${ESC}[49m`), [
    { text: 'hi', classes: 'ansi-fg-10' },
    { text: ' bg', classes: 'ansi-bg-4' },
  ]);
});

test('256-colour and true-colour arguments are consumed, not read as codes', () => {
  // 38;5;1 is palette red; 38;2;1;4;… would read as bold and underline if its arguments leaked.
  assert.deepEqual(parseAnsi(`${ESC}[38;5;1ma${ESC}[38;2;1;4;3mb${ESC}[38;5;200mc`), [
    { text: 'abc', classes: 'ansi-fg-1' },
  ]);
});

test('segments with the same style merge, and other escapes between them vanish', () => {
  assert.deepEqual(parseAnsi(`${ESC}[33mab${ESC}[2Kcd${ESC}[0m`), [{ text: 'abcd', classes: 'ansi-fg-3' }]);
  assert.deepEqual(parseAnsi(`${ESC}[0m`), []);
});

test('markup in a log line stays characters of the text', () => {
  const line = `${ESC}[31m<img src=x onerror=alert(1)>${ESC}[0m`;
  assert.deepEqual(parseAnsi(line), [{ text: '<img src=x onerror=alert(1)>', classes: 'ansi-fg-1' }]);
});
