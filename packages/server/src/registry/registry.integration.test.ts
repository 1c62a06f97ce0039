import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { access as fileExists, readdir, writeFile, mkdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { BUSYBOX_IMAGE, ensureBusyboxImage, freePort, run, tempDir } from '@flotilla/testkit';
import type { RegistryAccess } from './access.js';
import { registryPlugin } from './plugin.js';

/** A small honest access table: alice pushes/pulls fleet-a/*, bob nothing, the device pulls fleet-a/* only. */
type P = { kind: 'user'; name: string } | { kind: 'device'; fleet: string };
const access: RegistryAccess<P> = {
  authenticate: async (username, password) => {
    if (password === 'alice-key') return { kind: 'user', name: 'alice' };
    if (password === 'bob-key') return { kind: 'user', name: 'bob' };
    if (username === 'd_0123456789abcdef0123456789abcdef' && password === 'device-key')
      return { kind: 'device', fleet: 'fleet-a' };
    return null;
  },
  authorize: async (p, repository, action) => {
    if (p.kind === 'device') return action === 'pull' && repository.startsWith(`${p.fleet}/`);
    return p.name === 'alice' && repository.startsWith('fleet-a/');
  },
  subjectOf: (p) => (p.kind === 'user' ? p.name : `device:${p.fleet}`),
  credentialOf: (p) => JSON.stringify(p),
  principalOf: async (credential) => JSON.parse(credential) as P,
  locate: async (repository) => ({ key: repository, quotaGroup: async () => [repository.split('/')[0] ?? ''] }),
};

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

let app: FastifyInstance;
let base: string;
let host: string;
let dir: { path: string; remove: () => Promise<void> };
const images: string[] = [];

before(async () => {
  dir = await tempDir('flotilla-registry-');
  const port = await freePort();
  host = `127.0.0.1:${port}`;
  base = `http://${host}`;
  app = Fastify();
  await app.register(registryPlugin<P>, { storageDir: dir.path, access, publicUrl: () => base });
  await app.listen({ host: '127.0.0.1', port });
});
after(async () => {
  await app.close();
  for (const image of images) await run('docker', ['rmi', '-f', image]).catch(() => undefined);
  await run('docker', ['logout', host]).catch(() => undefined);
  await dir.remove();
});

async function token(user: string, password: string, scope: string): Promise<string> {
  const res = await fetch(`${base}/auth/v1/token?service=${host}&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: basic(user, password) },
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
  assert.equal(body.token, body.access_token);
  assert.ok(body.expires_in > 0 && !Number.isNaN(Date.parse(body.issued_at)));
  return body.token;
}

describe('registry protocol', () => {
  test('GET /v2/ challenges with the token realm and accepts a token', async () => {
    const res = await fetch(`${base}/v2/`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), `Bearer realm="${base}/auth/v1/token",service="${host}"`);
    const ok = await fetch(`${base}/v2/`, {
      headers: { authorization: `Bearer ${await token('x', 'alice-key', 'repository:fleet-a/main:pull')}` },
    });
    assert.equal(ok.status, 200);
    const bad = await fetch(`${base}/auth/v1/token?service=${host}`, {
      headers: { authorization: basic('x', 'wrong') },
    });
    assert.equal(bad.status, 401);
  });

  test('chunked upload, digest check, range reads, mount, manifest by tag and digest, delete', async () => {
    const auth = { authorization: `Bearer ${await token('x', 'alice-key', 'repository:fleet-a/main:pull,push')}` };
    const content = Buffer.from('hello registry, this is a layer');
    const digest = sha(content);
    let res = await fetch(`${base}/v2/fleet-a/main/blobs/uploads/`, { method: 'POST', headers: auth });
    assert.equal(res.status, 202);
    const location = res.headers.get('location') ?? '';
    res = await fetch(`${base}${location}`, {
      method: 'PATCH',
      headers: { ...auth, 'content-range': '0-9', 'content-type': 'application/octet-stream' },
      body: content.subarray(0, 10),
    });
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('range'), '0-9');
    // A chunk that does not continue where the upload is is refused.
    res = await fetch(`${base}${location}`, {
      method: 'PATCH',
      headers: { ...auth, 'content-range': '5-9' },
      body: content.subarray(5, 10),
    });
    assert.equal(res.status, 416);
    // Nothing is visible before the final PUT.
    assert.equal(
      (await fetch(`${base}/v2/fleet-a/main/blobs/${digest}`, { method: 'HEAD', headers: auth })).status,
      404,
    );
    res = await fetch(`${base}${location}?digest=${digest}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: content.subarray(10),
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), digest);

    res = await fetch(`${base}/v2/fleet-a/main/blobs/${digest}`, { headers: { ...auth, range: 'bytes=6-13' } });
    assert.equal(res.status, 206);
    assert.equal(res.headers.get('content-range'), `bytes 6-13/${content.length}`);
    assert.equal(await res.text(), 'registry');
    res = await fetch(`${base}/v2/fleet-a/main/blobs/${digest}`, { method: 'HEAD', headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(content.length));

    // A wrong digest is refused and leaves nothing behind.
    const wrong = sha('something else');
    res = await fetch(`${base}/v2/fleet-a/main/blobs/uploads/?digest=${wrong}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: content,
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'DIGEST_INVALID');
    assert.equal((await readdir(join(dir.path, 'uploads'))).length, 0, 'a refused upload leaves no temp file');

    // Cross-repository mount.
    const auth2 = {
      authorization: `Bearer ${await token('x', 'alice-key', 'repository:fleet-a/other:pull,push repository:fleet-a/main:pull')}`,
    };
    res = await fetch(`${base}/v2/fleet-a/other/blobs/uploads/?mount=${digest}&from=fleet-a/main`, {
      method: 'POST',
      headers: auth2,
    });
    assert.equal(res.status, 201);

    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    res = await fetch(`${base}/v2/fleet-a/main/blobs/uploads/?digest=${sha(config)}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: config,
    });
    assert.equal(res.status, 201);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: content.length }],
      }),
    );
    res = await fetch(`${base}/v2/fleet-a/main/manifests/v1`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('docker-content-digest'), sha(manifest));
    for (const ref of ['v1', sha(manifest)]) {
      res = await fetch(`${base}/v2/fleet-a/main/manifests/${ref}`, { headers: auth });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
      assert.equal(res.headers.get('docker-content-digest'), sha(manifest));
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), manifest);
    }
    // A manifest naming a blob the repository lacks is refused.
    const dangling = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { digest: sha('nope'), size: 4 },
        layers: [],
      }),
    );
    res = await fetch(`${base}/v2/fleet-a/main/manifests/v2`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: dangling,
    });
    assert.equal(res.status, 400);
    // Wrong digest in the URL is refused.
    res = await fetch(`${base}/v2/fleet-a/main/manifests/${sha('x')}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    assert.equal(res.status, 400);

    // An image index over that manifest, by digest then by tag.
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: sha(manifest),
            size: manifest.length,
            platform: { architecture: 'amd64', os: 'linux' },
          },
        ],
      }),
    );
    res = await fetch(`${base}/v2/fleet-a/main/manifests/${sha(index)}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: index,
    });
    assert.equal(res.status, 201);
    res = await fetch(`${base}/v2/fleet-a/main/manifests/${sha(index)}`, { method: 'HEAD', headers: auth });
    assert.equal(res.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json');
    assert.equal(res.headers.get('content-length'), String(index.length));
    const orphanIndex = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [{ digest: sha('missing'), size: 1 }],
      }),
    );
    res = await fetch(`${base}/v2/fleet-a/main/manifests/multi`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.index.v1+json' },
      body: orphanIndex,
    });
    assert.equal(res.status, 400);

    res = await fetch(`${base}/v2/fleet-a/main/tags/list`, { headers: auth });
    assert.deepEqual(await res.json(), { name: 'fleet-a/main', tags: ['v1'] });
    res = await fetch(`${base}/v2/fleet-a/main/manifests/${sha(manifest)}`, { method: 'DELETE', headers: auth });
    assert.equal(res.status, 202);
    assert.equal((await fetch(`${base}/v2/fleet-a/main/manifests/v1`, { headers: auth })).status, 404);
    assert.equal(
      (await fetch(`${base}/v2/fleet-a/main/blobs/${digest}`, { method: 'DELETE', headers: auth })).status,
      202,
    );
    assert.equal((await fetch(`${base}/v2/fleet-a/main/blobs/${digest}`, { headers: auth })).status, 404);
  });

  test('an upload cut off mid-body never becomes a visible blob', async () => {
    const auth = `Bearer ${await token('x', 'alice-key', 'repository:fleet-a/cut:pull,push')}`;
    const content = Buffer.alloc(256 * 1024, 7);
    const digest = sha(content);
    const req = httpRequest(`${base}/v2/fleet-a/cut/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: {
        authorization: auth,
        'content-type': 'application/octet-stream',
        'content-length': String(content.length),
      },
    });
    req.on('error', () => undefined);
    req.write(content.subarray(0, 100 * 1024));
    await sleep(200);
    req.destroy();
    await sleep(200);
    assert.equal(
      (await fetch(`${base}/v2/fleet-a/cut/blobs/${digest}`, { method: 'HEAD', headers: { authorization: auth } }))
        .status,
      404,
    );
    const hex = digest.slice('sha256:'.length);
    await assert.rejects(
      fileExists(join(dir.path, 'blobs', 'sha256', hex.slice(0, 2), hex)),
      'no blob file under blobs/',
    );
    // The server let go of the upload: no write to it waits for a body that will never end.
    const uploadsDir = join(dir.path, 'uploads');
    const held = (await readdir('/proc/self/fd'))
      .map((fd) => {
        try {
          return readlinkSync(`/proc/self/fd/${fd}`);
        } catch {
          return '';
        }
      })
      .filter((target) => target.startsWith(uploadsDir));
    assert.deepEqual(held, [], 'upload files still open');
  });

  test('access: bob and the device cannot push; the device cannot read another fleet', async () => {
    const bobToken = await token('bob', 'bob-key', 'repository:fleet-a/main:pull,push');
    let res = await fetch(`${base}/v2/fleet-a/main/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bobToken}` },
    });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /insufficient_scope/);
    res = await fetch(`${base}/v2/fleet-a/main/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: basic('d_0123456789abcdef0123456789abcdef', 'device-key') },
    });
    assert.equal(res.status, 403);
    res = await fetch(`${base}/v2/fleet-b/main/tags/list`, {
      headers: { authorization: basic('d_0123456789abcdef0123456789abcdef', 'device-key') },
    });
    assert.equal(res.status, 403);
    res = await fetch(`${base}/v2/../etc/manifests/latest`, { headers: { authorization: basic('x', 'alice-key') } });
    assert.notEqual(res.status, 200);
  });
});

describe('registry with real clients', () => {
  test('docker login, push and pull; device pull', async () => {
    await ensureBusyboxImage();
    const context = join(dir.path, 'ctx');
    await mkdir(context, { recursive: true });
    await writeFile(join(context, 'Dockerfile'), `FROM ${BUSYBOX_IMAGE}\nRUN echo "built $(date +%s%N)" > /stamp\n`);
    const ref = `${host}/fleet-a/app:v1`;
    images.push(ref);
    await run('docker', ['build', '-q', '-t', ref, context]);
    await run('docker', ['login', '-u', 'alice', '--password-stdin', host], { input: 'alice-key' });
    const push = await run('docker', ['push', ref]);
    const digest = /digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1];
    assert.ok(digest, push.stdout);
    const stamp = (await run('docker', ['run', '--rm', ref, 'cat', '/stamp'])).stdout;
    await run('docker', ['rmi', ref]);
    await run('docker', ['logout', host]);
    // Pull with device credentials, by digest.
    await run('docker', ['login', '-u', 'd_0123456789abcdef0123456789abcdef', '--password-stdin', host], {
      input: 'device-key',
    });
    const byDigest = `${host}/fleet-a/app@${digest}`;
    images.push(byDigest);
    await run('docker', ['pull', byDigest]);
    assert.equal((await run('docker', ['run', '--rm', byDigest, 'cat', '/stamp'])).stdout, stamp);
    // The device may not push.
    await run('docker', ['tag', byDigest, `${host}/fleet-a/app:device`]);
    images.push(`${host}/fleet-a/app:device`);
    await assert.rejects(run('docker', ['push', `${host}/fleet-a/app:device`]));
    await run('docker', ['logout', host]);
  });

  test('skopeo copy from a docker archive and back as OCI', async () => {
    await ensureBusyboxImage();
    const archive = join(dir.path, 'busybox.tar');
    await run('docker', ['save', '-o', archive, BUSYBOX_IMAGE]);
    await run('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'x:alice-key',
      `docker-archive:${archive}`,
      `docker://${host}/fleet-a/busybox:latest`,
    ]);
    const inspect = JSON.parse(
      (
        await run('skopeo', [
          'inspect',
          '--tls-verify=false',
          '--creds',
          'x:alice-key',
          `docker://${host}/fleet-a/busybox:latest`,
        ])
      ).stdout,
    ) as { Digest: string; Layers: string[] };
    assert.match(inspect.Digest, /^sha256:/);
    await run('skopeo', [
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      'x:alice-key',
      `docker://${host}/fleet-a/busybox:latest`,
      `oci:${join(dir.path, 'oci')}:copy`,
    ]);
    // Copy the OCI layout back as an index-free OCI manifest under a new tag; skopeo verifies every digest.
    await run('skopeo', [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      'x:alice-key',
      '--format',
      'oci',
      `oci:${join(dir.path, 'oci')}:copy`,
      `docker://${host}/fleet-a/busybox:oci`,
    ]);
    const tags = await fetch(`${base}/v2/fleet-a/busybox/tags/list`, {
      headers: { authorization: basic('x', 'alice-key') },
    });
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['latest', 'oci']);
    await assert.rejects(
      run('skopeo', [
        'inspect',
        '--tls-verify=false',
        '--creds',
        'x:bob-key',
        `docker://${host}/fleet-a/busybox:latest`,
      ]),
    );
  });
});
