import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { parseOsRelease, readOsRelease } from './os-release.js';

describe('os-release', () => {
  it('parses quoted, unquoted and escaped values, and skips what is not KEY=value', () => {
    const fields = parseOsRelease(
      [
        'PRETTY_NAME="balenaOS 6.1.0"',
        'VERSION_ID=6.1.0',
        "NAME='Flotilla OS'",
        'HOME_URL="https://example.test/\\"x\\""',
        '# a comment',
        'not a line',
        '',
      ].join('\n'),
    );
    assert.deepEqual(Object.fromEntries(fields), {
      PRETTY_NAME: 'balenaOS 6.1.0',
      VERSION_ID: '6.1.0',
      NAME: 'Flotilla OS',
      HOME_URL: 'https://example.test/"x"',
    });
  });

  it('names the OS by PRETTY_NAME, else NAME and VERSION, else the kernel', async () => {
    const dir = await tempDir('flotilla-os-release-');
    try {
      const file = join(dir.path, 'os-release');
      await writeFile(file, 'PRETTY_NAME="Flotilla OS 2.0.0"\nVERSION_ID="2.0.0"\n');
      assert.deepEqual(await readOsRelease(file), { name: 'Flotilla OS 2.0.0', version: '2.0.0' });
      await writeFile(file, 'NAME=Flotilla\nVERSION="2 (two)"\n');
      assert.deepEqual(await readOsRelease(file), { name: 'Flotilla 2 (two)', version: undefined });
      const none = await readOsRelease(join(dir.path, 'missing'));
      assert.match(none.name, /^Linux /);
      assert.equal(none.version, undefined);
    } finally {
      await dir.remove();
    }
  });
});
