import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '@flotilla/testkit';
import { parseRange } from './blob-routes.js';
import { RegistryStorage } from './storage.js';
import { digestHex, isRepositoryName, isTag, parseRegistryPath } from './names.js';
import { parseScope, TokenSigner } from './token.js';

test('repository names cannot escape the storage folder', () => {
  for (const ok of ['fleet/web', 'my-fleet/web_ui', 'a/b/c', 'a.b/c--d']) assert.equal(isRepositoryName(ok), true, ok);
  for (const bad of ['../x', 'a/../b', '/a', 'a//b', 'A/b', 'a/', '', 'a/.b', `${'a'.repeat(256)}`])
    assert.equal(isRepositoryName(bad), false, bad);
  assert.equal(isTag('v1.0-rc_1'), true);
  assert.equal(isTag('.hidden'), false);
  assert.equal(isTag('a/b'), false);
  assert.equal(digestHex(`sha256:${'a'.repeat(64)}`), 'a'.repeat(64));
  assert.equal(digestHex(`sha512:${'a'.repeat(128)}`), undefined);
  assert.equal(digestHex(`sha256:${'A'.repeat(64)}`), undefined);
});

test('registry paths', () => {
  assert.deepEqual(parseRegistryPath(''), { kind: 'base' });
  assert.deepEqual(parseRegistryPath('f/web/blobs/uploads/'), { kind: 'uploads', name: 'f/web' });
  assert.deepEqual(parseRegistryPath('f/web/blobs/uploads/0b4c6a3e-7a52-4f62-b0a1-1c7b8c1d2e3f'), {
    kind: 'uploads',
    name: 'f/web',
    uploadId: '0b4c6a3e-7a52-4f62-b0a1-1c7b8c1d2e3f',
  });
  assert.equal(parseRegistryPath('f/web/blobs/uploads/../../x'), undefined);
  assert.deepEqual(parseRegistryPath('f/web/blobs/sha256:abc'), { kind: 'blob', name: 'f/web', digest: 'sha256:abc' });
  assert.deepEqual(parseRegistryPath('f/manifests/x/manifests/latest'), {
    kind: 'manifest',
    name: 'f/manifests/x',
    reference: 'latest',
  });
  assert.deepEqual(parseRegistryPath('f/web/tags/list'), { kind: 'tags', name: 'f/web' });
  assert.equal(parseRegistryPath('f/web/other'), undefined);
});

test('byte ranges', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
  assert.equal(parseRange('bytes=100-', 100), 'invalid');
  assert.equal(parseRange('bytes=9-3', 100), 'invalid');
  assert.equal(parseRange(undefined, 100), undefined);
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined, 'multi-range: whole body');
});

test('tokens: signed, expiring, secret persisted 0600 and reused', async () => {
  const dir = await tempDir();
  try {
    const signer = await TokenSigner.open(dir.path);
    assert.equal((await stat(join(dir.path, 'token-secret'))).mode & 0o777, 0o600);
    const token = signer.sign(
      { subject: 'user:1', credential: 'k:1' },
      'reg',
      [{ type: 'repository', name: 'f/web', actions: ['pull'] }],
      60,
      1000,
    );
    assert.deepEqual(signer.verify(token, 'reg', 1010)?.access, [
      { type: 'repository', name: 'f/web', actions: ['pull'] },
    ]);
    assert.equal(signer.verify(token, 'reg', 1061), undefined, 'expired');
    assert.equal(signer.verify(token, 'other-registry', 1010), undefined, 'another audience');
    const [h, b, s] = token.split('.');
    const forged = Buffer.from(
      JSON.stringify({
        ...JSON.parse(Buffer.from(b ?? '', 'base64url').toString()),
        access: [{ type: 'repository', name: 'f/web', actions: ['pull', 'push'] }],
      }),
    ).toString('base64url');
    assert.equal(signer.verify(`${h}.${forged}.${s}`, 'reg', 1010), undefined, 'tampered claims');
    const again = await TokenSigner.open(dir.path);
    assert.ok(again.verify(token, 'reg', 1010), 'same secret after a restart');
    assert.ok((await readFile(join(dir.path, 'token-secret'))).length >= 32);
    const other = await tempDir();
    try {
      assert.equal(
        (await TokenSigner.open(other.path)).verify(token, 'reg', 1010),
        undefined,
        'another secret rejects it',
      );
    } finally {
      await other.remove();
    }
  } finally {
    await dir.remove();
  }
});

test('scopes', () => {
  assert.deepEqual(parseScope('repository:f/web:pull,push'), { name: 'f/web', actions: ['pull', 'push'] });
  assert.deepEqual(parseScope('repository:f/web:*'), { name: 'f/web', actions: ['*'] });
  assert.equal(parseScope('registry:catalog:*'), undefined);
});

test('abandoned uploads are swept, recent ones kept', async () => {
  const dir = await tempDir();
  try {
    const storage = new RegistryStorage(dir.path);
    await storage.init();
    const id = await storage.startUpload();
    assert.equal(await storage.sweepUploads(24 * 3600 * 1000), 0);
    assert.equal(await storage.sweepUploads(24 * 3600 * 1000, Date.now() + 25 * 3600 * 1000), 1);
    assert.equal(await storage.uploadSize(id), undefined);
  } finally {
    await dir.remove();
  }
});
