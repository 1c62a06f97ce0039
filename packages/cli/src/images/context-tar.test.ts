import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ignoreFilter } from './context-tar.js';

test('.dockerignore patterns, negation, and the Dockerfile always kept', () => {
  const ignored = ignoreFilter('/ctx', ['*.log', 'node_modules', '!keep.log', 'Dockerfile.dev'], 'Dockerfile.dev');
  assert.equal(ignored('/ctx/a.log'), true);
  assert.equal(ignored('/ctx/keep.log'), false);
  assert.equal(ignored('/ctx/node_modules'), true);
  assert.equal(ignored('/ctx/src/index.js'), false);
  assert.equal(ignored('/ctx/Dockerfile.dev'), false, 'the Dockerfile in use is always sent');
  assert.equal(ignored('/ctx'), false);
});
