import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextVersion } from './versions.js';

test('next version bumps the patch of the highest version', () => {
  assert.equal(nextVersion([]), '0.0.1');
  assert.equal(nextVersion(['0.0.1', '0.0.2']), '0.0.3');
  assert.equal(nextVersion(['1.2.3', '0.9.9', '1.10.0']), '1.10.1');
  assert.equal(nextVersion(['2.0.0-beta.1']), '2.0.1');
  assert.equal(nextVersion(['not-a-version']), '0.0.1');
});
