import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import {
  credentialsPath,
  readCredentials,
  removeCredentials,
  requireCredentials,
  writeCredentials,
} from './credentials.js';

test('credentials path: FLOTILLA_CONFIG_DIR, then XDG_CONFIG_HOME, then ~/.config', () => {
  assert.equal(credentialsPath({ FLOTILLA_CONFIG_DIR: '/a' }), '/a/credentials.json');
  assert.equal(credentialsPath({ XDG_CONFIG_HOME: '/x' }), '/x/flotilla/credentials.json');
  assert.equal(credentialsPath({}), join(homedir(), '.config', 'flotilla', 'credentials.json'));
});

test('write is 0600 and round-trips; remove; missing file is "not logged in"', async () => {
  const dir = await tempDir();
  try {
    const env = { FLOTILLA_CONFIG_DIR: join(dir.path, 'nested') };
    assert.equal(await readCredentials(env), undefined);
    await assert.rejects(requireCredentials(env), /NOT_LOGGED_IN|not logged in/);
    const file = await writeCredentials({ url: 'http://127.0.0.1:1234', token: 'secret' }, env);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readCredentials(env), { url: 'http://127.0.0.1:1234', token: 'secret' });
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { url: 'http://127.0.0.1:1234', token: 'secret' });
    assert.equal(await removeCredentials(env), true);
    assert.equal(await removeCredentials(env), false);
  } finally {
    await dir.remove();
  }
});

test('login into an existing folder open to others makes it 0700 and the file 0600', async () => {
  const dir = await tempDir();
  try {
    const folder = join(dir.path, 'flotilla');
    await mkdir(folder, { mode: 0o755 });
    await chmod(folder, 0o755);
    await writeFile(join(folder, 'credentials.json'), '{}', { mode: 0o644 });
    const file = await writeCredentials(
      { url: 'http://127.0.0.1:1234', token: 'secret' },
      { FLOTILLA_CONFIG_DIR: folder },
    );
    assert.equal((await stat(folder)).mode & 0o777, 0o700);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  } finally {
    await dir.remove();
  }
});

test('a damaged file is reported, not crashed on', async () => {
  const dir = await tempDir();
  try {
    await mkdir(dir.path, { recursive: true });
    await writeFile(join(dir.path, 'credentials.json'), '{"url":"not a url","token":""}');
    await assert.rejects(
      readCredentials({ FLOTILLA_CONFIG_DIR: dir.path }),
      (e: unknown) => (e as { code?: string }).code === 'NOT_LOGGED_IN',
    );
  } finally {
    await dir.remove();
  }
});
