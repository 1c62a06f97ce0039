import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes } from '@flotilla/protocol';
import { imageSizeText, releaseSize } from './release-size.js';

const service = (imageSize: number | null) => ({ id: 1, name: 's', image: 'i', imageId: 1, imageSize });

test('sizes read in binary units, one decimal past bytes', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024 + 300 * 1024), '5.3 MiB');
  assert.equal(formatBytes(3 * 1024 ** 3), '3.0 GiB');
  assert.equal(formatBytes(2 * 1024 ** 5), '2048.0 TiB');
  assert.equal(imageSizeText(null), '—');
  assert.equal(imageSizeText(2048), '2.0 KiB');
});

test("a release's size is the sum of its images, and says when some are unknown", () => {
  assert.equal(releaseSize({ services: [service(1024), service(2048)] }), '3.0 KiB');
  assert.equal(releaseSize({ services: [service(1024), service(null)] }), '≥ 1.0 KiB');
  assert.equal(releaseSize({ services: [service(null)] }), '—');
  assert.equal(releaseSize({ services: [] }), '—');
});
