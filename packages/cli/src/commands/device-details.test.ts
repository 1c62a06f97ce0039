import assert from 'node:assert/strict';
import { test } from 'node:test';
import { updateBytesDetails } from './device.js';

test('device info shows delta update bytes only once a delta was reported', () => {
  assert.deepEqual(updateBytesDetails(undefined), []);
  assert.deepEqual(updateBytesDetails({ last: null, total: { downloaded: 0, pullBytes: 0 } }), []);
  assert.deepEqual(
    updateBytesDetails({
      last: { release: 'abcdef0123456789', downloaded: 9_205, pullBytes: 58_801_642 },
      total: { downloaded: 2_010_205, pullBytes: 60_801_642 },
    }),
    [
      ['last update', '9.0 KiB downloaded, a plain pull needs 56.1 MiB (release abcdef0)'],
      ['all updates', '1.9 MiB downloaded, a plain pull needs 58.0 MiB'],
    ],
  );
});
