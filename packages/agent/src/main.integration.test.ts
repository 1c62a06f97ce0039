import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { run, tempDir } from '@flotilla/testkit';

const BIN = fileURLToPath(new URL('../../../bin/flotilla-agent', import.meta.url));

describe('flotilla-agent binary', () => {
  it('rejects a bad config.json with INVALID_CONFIG_JSON, non-zero exit and no stack trace', async () => {
    const dir = await tempDir();
    try {
      const config = join(dir.path, 'config.json');
      await writeFile(config, JSON.stringify({ apiEndpoint: 'not a url' }));
      const error = await run(BIN, ['--config', config, '--data', join(dir.path, 'data')]).then(
        () => undefined,
        (e: unknown) => e as Error & { cause?: { code?: number } },
      );
      assert.ok(error, 'must fail');
      assert.equal(error.cause?.code, 1);
      assert.match(error.message, /INVALID_CONFIG_JSON/);
      assert.match(error.message, /apiEndpoint/);
      assert.doesNotMatch(error.message, /\n\s+at /);
    } finally {
      await dir.remove();
    }
  });

  it('rejects a bad flag with VALIDATION_FAILED naming it, before it starts anything', async () => {
    const dir = await tempDir();
    try {
      const config = join(dir.path, 'config.json');
      await writeFile(config, JSON.stringify({}));
      for (const [flag, value] of [
        ['--poll-interval', 'soon'],
        ['--api-port', '70000'],
        ['--max-remote-streams', '-1'],
        ['--layer-cache-mib', '1.5'],
        ['--host-config', 'maybe'],
      ] as const) {
        const error = await run(BIN, ['--config', config, '--data', join(dir.path, 'data'), flag, value]).then(
          () => undefined,
          (e: unknown) => e as Error,
        );
        assert.ok(error, `${flag} ${value} must fail`);
        assert.match(error.message, new RegExp(`${flag}.*\\(VALIDATION_FAILED\\)`), flag);
        assert.doesNotMatch(error.message, /\n\s+at /);
      }
    } finally {
      await dir.remove();
    }
  });
});
