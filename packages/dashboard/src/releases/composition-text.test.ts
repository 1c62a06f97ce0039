import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { compositionText } from './composition-text.js';

test('a composition reads as the YAML it came from, and parses back to the same document', async () => {
  const composition = {
    services: {
      web: {
        image: 'web',
        environment: { GREETING: '<script>window.__xss=1</script>', COUNT: 3, EMPTY: null },
        ports: ['8080:80'],
        command: ['sh', '-c', `echo ${'long '.repeat(30)}done`],
      },
      db: { build: { context: 'db', args: { VERSION: '16' } }, volumes: ['data:/var/lib/db'] },
    },
    volumes: { data: null },
  };
  const text = await compositionText(composition);
  assert.equal(
    text.split('\n').slice(0, 8).join('\n'),
    [
      'services:',
      '  web:',
      '    image: web',
      '    environment:',
      '      GREETING: <script>window.__xss=1</script>',
      '      COUNT: 3',
      '      EMPTY: null',
      '    ports:',
    ].join('\n'),
  );
  // Long values stay on one line (no folding), so a command reads as written.
  assert.ok(text.includes(`      - echo ${'long '.repeat(30)}done\n`), text);
  assert.deepEqual(parse(text), composition);
});
