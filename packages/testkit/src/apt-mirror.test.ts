import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseDeb822, parseOneLine } from './apt-mirror.js';

test('deb822 sources: every URI × suite of enabled deb stanzas', () => {
  const text = `Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: bookworm\n`;
  assert.deepEqual(parseDeb822(text), [
    { uri: 'http://mirror.example/debian', suite: 'bookworm' },
    { uri: 'http://mirror.example/debian', suite: 'bookworm-updates' },
  ]);
});

test('one-line sources: options and comments are skipped', () => {
  const text = `# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main\ndeb-src http://b.example bookworm main\ndeb http://c.example/debian-security bookworm-security main # tail\n`;
  assert.deepEqual(parseOneLine(text), [
    { uri: 'http://a.example/debian', suite: 'bookworm' },
    { uri: 'http://c.example/debian-security', suite: 'bookworm-security' },
  ]);
});
