import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findImage } from '../reconcile/plan.js';
import { deltaTag } from './delta-tag.js';

const hex = 'ab'.repeat(32);

test('a digest reference has a delta tag in its repository; other references have none', () => {
  assert.equal(deltaTag(`127.0.0.1:5000/fleet/main@sha256:${hex}`), `127.0.0.1:5000/fleet/main:flotilla-delta-${hex}`);
  assert.equal(deltaTag('127.0.0.1:5000/fleet/main:latest'), undefined);
  assert.equal(deltaTag(`fleet/main@sha256:${hex.slice(1)}`), undefined);
});

test('the planner finds an image loaded from a delta by the digest reference it stands for', () => {
  const ref = `host/fleet/main@sha256:${hex}`;
  const loaded = { id: 'sha256:1', repoTags: [deltaTag(ref)!], repoDigests: [] };
  assert.equal(findImage([loaded], ref), loaded);
  assert.equal(findImage([loaded], `host/fleet/main@sha256:${'cd'.repeat(32)}`), undefined);
});
