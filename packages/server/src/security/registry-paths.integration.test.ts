import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { testDatabases } from '@flotilla/testkit';
import { AttackTally, basicAuth } from '../testing/attacks.js';
import { sha256Digest } from '../testing/registry-client.js';
import { twoTenants, type TwoTenants } from '../testing/tenants.js';

/** One request with the path sent byte for byte as given (fetch would normalise `..` and encodings away). */
function rawRequest(
  baseUrl: string,
  method: string,
  path: string,
  authorization: string,
  body?: Buffer,
): Promise<{ status: number; text: string; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const url = new URL(baseUrl);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path,
        headers: {
          authorization,
          ...(body ? { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString(),
            location: res.headers.location,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Every file below `dir`, relative to it. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

const CANARY = 'canary: nobody may read or write me through the registry';

for (const testDb of testDatabases()) {
  describe(`security: registry path traversal (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('names, references, digests, upload ids and mount sources that leave the registry folder are refused', async () => {
      const { a, b } = t;
      // Canaries next to the registry folder and one level further out; the registry is <dataDir>/registry.
      await writeFile(join(t.outerDir, 'canary.txt'), CANARY);
      await writeFile(join(t.dataDir, 'canary.txt'), CANARY);
      const outside = async () =>
        (await filesBelow(t.outerDir)).filter(
          (f) => !f.startsWith('data/registry/') && !f.startsWith('data/flotilla.db'),
        );
      const filesBefore = await outside();
      // A user with push rights on its own repository: whatever is refused is refused for the path, not the user.
      const auth = basicAuth(a.username, a.apiKey);
      const repo = `${a.slug}/main`;
      const hex = a.image.layerDigest.slice('sha256:'.length);
      const up = '..%2f..%2f..%2f..';
      const manifestNaming = (digest: string) =>
        Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest, size: 1 },
            layers: [],
          }),
        );
      const started = await rawRequest(t.url, 'POST', `/v2/${repo}/blobs/uploads/`, auth);
      assert.equal(started.status, 202);
      assert.ok(started.location);
      const attempts: Array<[string, string, Buffer?]> = [
        // Repository names.
        ['GET', '/v2/../../canary.txt/manifests/latest'],
        ['GET', `/v2/${repo}/../../../canary.txt/tags/list`],
        ['GET', `/v2/${repo}/../../${b.slug}/main/tags/list`],
        ['GET', `/v2/${a.slug}/%2e%2e/%2e%2e/%2e%2e/canary.txt/tags/list`],
        ['GET', `/v2/${a.slug}/main%2f${up}%2fcanary.txt/tags/list`],
        ['GET', '/v2//etc/passwd/tags/list'],
        ['GET', '/v2/%2fetc%2fpasswd/tags/list'],
        ['GET', `/v2/${a.slug}\\..\\..\\..\\canary.txt/tags/list`],
        ['GET', `/v2/${a.slug}/main%00/tags/list`],
        ['GET', `/v2/${a.slug}/${'a'.repeat(300)}/tags/list`],
        ['GET', `/v2/${a.slug}/_tags/tags/list`],
        // Blob digests.
        ['GET', `/v2/${repo}/blobs/${up}%2fcanary.txt`],
        ['GET', `/v2/${repo}/blobs/sha256:${up}%2fcanary.txt`],
        ['GET', `/v2/${repo}/blobs/sha256:${hex}/../../../../../canary.txt`],
        ['GET', `/v2/${repo}/blobs/sha256:${hex}%00`],
        ['DELETE', `/v2/${repo}/blobs/sha256:${up}%2fcanary.txt`],
        // Manifest references.
        ['GET', `/v2/${repo}/manifests/${up}%2fcanary.txt`],
        ['GET', `/v2/${repo}/manifests/%2e%2e`],
        ['GET', `/v2/${repo}/manifests/..\\..\\canary.txt`],
        ['GET', `/v2/${repo}/manifests/${'v'.repeat(200)}`],
        ['GET', `/v2/${repo}/manifests/sha256:${'0'.repeat(64)}%2f..%2f..%2fcanary.txt`],
        ['PUT', `/v2/${repo}/manifests/${up}%2fpwned`, manifestNaming(a.image.configDigest)],
        ['PUT', `/v2/${repo}/manifests/..`, manifestNaming(a.image.configDigest)],
        ['PUT', `/v2/${repo}/manifests/latest`, manifestNaming(`sha256:${up}%2fcanary.txt`)],
        ['PUT', `/v2/${repo}/manifests/latest`, manifestNaming('sha256:../../../../../canary.txt')],
        ['DELETE', `/v2/${repo}/manifests/${up}%2fflotilla.db`],
        // Upload ids and digests of uploads.
        ['GET', `/v2/${repo}/blobs/uploads/${up}%2fcanary.txt`],
        ['PATCH', `/v2/${repo}/blobs/uploads/../../../../canary.txt`, Buffer.from('overwritten')],
        ['PUT', `/v2/${repo}/blobs/uploads/..%2F..%2F..%2Fcanary.txt?digest=${sha256Digest('x')}`, Buffer.from('x')],
        ['DELETE', `/v2/${repo}/blobs/uploads/${up}%2fcanary.txt`],
        ['POST', `/v2/${repo}/blobs/uploads/?digest=sha256:${up}%2fpwned`, Buffer.from('pwned')],
        ['PUT', `${started.location}?digest=sha256:..%2f..%2fpwned`, Buffer.from('pwned')],
        // Mount sources.
        ['POST', `/v2/${repo}/blobs/uploads/?mount=${a.image.layerDigest}&from=${up}%2fcanary.txt`],
        ['POST', `/v2/${repo}/blobs/uploads/?mount=${a.image.layerDigest}&from=${a.slug}%2fmain%2f..%2f..%2f..`],
        ['POST', `/v2/${repo}/blobs/uploads/?mount=${a.image.layerDigest}&from=%2fetc`],
      ];
      const tally = new AttackTally('registry-paths');
      const answers: string[] = [];
      for (const [method, path, body] of attempts) {
        const res = await rawRequest(t.url, method, path, auth, body);
        answers.push(res.text);
        // Not 401: the caller is authenticated, so a refusal is about the path (or, once normalised, another tenant).
        tally.record(
          res.status >= 400 && res.status < 500 && res.status !== 401,
          `${method} ${path} → ${res.status} ${res.text}`,
        );
      }
      // A mount digest that is not a digest is ignored, as the distribution spec says: a plain upload starts (202),
      // nothing is mounted (201).
      const mount = await rawRequest(
        t.url,
        'POST',
        `/v2/${repo}/blobs/uploads/?mount=sha256:..%2f..%2f..%2f..%2f..%2fcanary.txt&from=${encodeURIComponent(repo)}`,
        auth,
      );
      tally.record(mount.status === 202, `mount of a traversal digest → ${mount.status} ${mount.text}`);
      tally.finish('attempts');

      assert.equal(await readFile(join(t.outerDir, 'canary.txt'), 'utf8'), CANARY);
      assert.equal(await readFile(join(t.dataDir, 'canary.txt'), 'utf8'), CANARY);
      assert.deepEqual(await outside(), filesBefore, 'no file was made outside the registry folder');
      const inside = await filesBelow(join(t.dataDir, 'registry'));
      assert.deepEqual(
        inside.filter((f) => /canary|pwned|passwd|flotilla\.db|\.\./.test(f)),
        [],
        'no traversal name inside the registry folder either',
      );
      for (const text of answers) {
        assert.ok(!text.includes('canary: nobody'), 'the canary was read');
        assert.ok(!/root:.*:0:0:/.test(text), '/etc/passwd was read');
      }
      // The repository itself still works.
      assert.equal((await rawRequest(t.url, 'GET', `/v2/${repo}/tags/list`, auth)).status, 200);
    });
  });
}
