import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tempDir, testDatabases } from '@flotilla/testkit';
import { TokenSigner, type TokenClaims } from '../registry/token.js';
import { AttackTally, basicAuth } from '../testing/attacks.js';
import { twoTenants, type TwoTenants } from '../testing/tenants.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const claimsOf = (token: string) =>
  JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as TokenClaims;

for (const testDb of testDatabases()) {
  describe(`security: forged and misused registry tokens (${testDb.label})`, () => {
    let t: TwoTenants;
    before(async () => {
      t = await twoTenants(testDb);
    });
    after(() => t.close());

    test('tokens signed elsewhere, unsigned, altered, expired, wildcard, for another repository or action are refused', async () => {
      const { a, b } = t;
      const host = new URL(t.url).host;
      const own = `${a.slug}/main`;
      const other = `${b.slug}/main`;
      const mint = async (auth: string, scope: string) => {
        const res = await t.call('GET', `/auth/v1/token?service=${host}&scope=${encodeURIComponent(scope)}`, {
          headers: { authorization: auth },
        });
        assert.equal(res.status, 200, res.text);
        return res.data.token as string;
      };
      const userAuth = basicAuth(a.username, a.apiKey);
      const pullToken = await mint(userAuth, `repository:${own}:pull`);
      const pushToken = await mint(userAuth, `repository:${own}:pull,push`);
      const deviceToken = await mint(basicAuth(`d_${a.uuid}`, a.deviceKey), `repository:${own}:pull,push`);
      const manifest = (repo: string) => `/v2/${repo}/manifests/${repo === own ? a.image.tag : b.image.tag}`;
      const pull = (token: string, repo = own) => t.call('GET', manifest(repo), { key: token });
      const push = (token: string, repo = own) => t.call('POST', `/v2/${repo}/blobs/uploads/`, { key: token });

      // The honest tokens work, so every refusal below is about the token, not the request.
      assert.equal((await pull(pullToken)).status, 200);
      assert.equal((await push(pushToken)).status, 202);
      assert.equal((await pull(deviceToken)).status, 200);

      // Signed with the server's own secret, to reach the checks behind the signature (the secret is 0600 in the
      // server's data folder; a leak of it is not what is tested here).
      const secret = await readFile(join(t.dataDir, 'registry', 'token-secret'));
      const real = claimsOf(pullToken);
      const now = Math.floor(Date.now() / 1000);
      const signWith = (key: Buffer, claims: unknown, header: unknown = { alg: 'HS256', typ: 'JWT' }) => {
        const input = `${b64(header)}.${b64(claims)}`;
        return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
      };
      const withClaims = (patch: Partial<TokenClaims> | Record<string, unknown>) =>
        signWith(secret, { ...real, ...patch });
      const [head, , sig] = pullToken.split('.') as [string, string, string];
      const elsewhere = await tempDir('flotilla-other-secret-');
      const foreign = await TokenSigner.open(elsewhere.path);
      await elsewhere.remove();

      const tally = new AttackTally('tokens');
      const refused = async (what: string, answer: Promise<{ status: number; text: string }>, expected = [401]) => {
        const res = await answer;
        tally.record(expected.includes(res.status), `${what} → ${res.status} ${res.text}`);
      };
      const grantAll = [{ type: 'repository', name: own, actions: ['pull', 'push'] }];
      await refused(
        'signed with another secret',
        pull(foreign.sign({ subject: real.sub, credential: real.cred }, real.aud, real.access, 3600)),
      );
      await refused(
        'signed with another secret, push',
        push(foreign.sign({ subject: real.sub, credential: real.cred }, real.aud, grantAll as never, 3600)),
      );
      await refused('alg none, no signature', pull(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(real)}.`));
      await refused('alg none, real signature', pull(`${b64({ alg: 'none', typ: 'JWT' })}.${b64(real)}.${sig}`));
      await refused('alg HS384 header, re-signed', pull(signWith(secret, real, { alg: 'HS384', typ: 'JWT' })));
      await refused('payload widened to push', push(`${head}.${b64({ ...real, access: grantAll })}.${sig}`));
      await refused(
        'payload pointed at another repository',
        pull(
          `${head}.${b64({ ...real, access: [{ type: 'repository', name: other, actions: ['pull'] }] })}.${sig}`,
          other,
        ),
      );
      await refused('payload expiry extended', pull(`${head}.${b64({ ...real, exp: now + 86_400 * 365 })}.${sig}`));
      await refused(
        'signature of another token',
        pull(`${head}.${pullToken.split('.')[1]}.${pushToken.split('.')[2]}`),
      );
      await refused('expired', pull(withClaims({ iat: now - 7200, nbf: now - 7200, exp: now - 1 })));
      await refused('not yet valid', pull(withClaims({ nbf: now + 600, exp: now + 4200 })));
      await refused('another issuer', pull(withClaims({ iss: 'someone-else' })));
      await refused('no access list', pull(withClaims({ access: undefined })));
      await refused('action "*"', pull(withClaims({ access: [{ type: 'repository', name: own, actions: ['*'] }] })));
      await refused(
        'repository "*"',
        pull(withClaims({ access: [{ type: 'repository', name: '*', actions: ['pull'] }] })),
      );
      await refused(
        'repository "<slug>/*"',
        pull(withClaims({ access: [{ type: 'repository', name: `${b.slug}/*`, actions: ['pull'] }] }), other),
      );
      await refused('truncated', pull(pullToken.split('.').slice(0, 2).join('.')));
      await refused('extra part', pull(`${pullToken}.${sig}`));
      await refused('empty bearer', t.call('GET', manifest(own), { headers: { authorization: 'Bearer ' } }));
      // Tokens the server minted, used beyond what they grant.
      for (const actions of ['*', 'pull,push', 'pull']) {
        const token = await mint(userAuth, `repository:${other}:${actions}`);
        await refused(`minted with ${other}:${actions}, pull`, pull(token, other));
        await refused(`minted with ${other}:${actions}, push`, push(token, other));
      }
      await refused('pull token on another repository', pull(pullToken, other));
      await refused('pull token used to push', push(pullToken));
      await refused(
        'pull token used to put a manifest',
        t.call('PUT', manifest(own), {
          key: pullToken,
          body: Buffer.from('{}'),
          headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        }),
      );
      await refused(
        'pull token used to delete a manifest',
        t.call('DELETE', `/v2/${own}/manifests/${a.image.manifestDigest}`, { key: pullToken }),
      );
      await refused("device's token used to push", push(deviceToken));
      await refused("device's token on another fleet", pull(deviceToken, other));
      // A registry token is not a credential anywhere else.
      await refused('registry token on the user API', t.call('GET', '/api/v1/whoami', { key: pushToken }));
      await refused(
        'registry token as a Basic password',
        t.call('GET', manifest(own), { headers: { authorization: basicAuth(a.username, pushToken) } }),
      );
      await refused(
        'registry token for a registry token',
        t.call('GET', `/auth/v1/token?service=${host}&scope=repository:${own}:pull`, {
          headers: { authorization: basicAuth(a.username, pushToken) },
        }),
      );
      await refused(
        'registry token as a device key',
        t.call('GET', `/device/v3/${a.uuid}/state`, { key: deviceToken }),
      );
      await refused('random bytes', pull(randomBytes(48).toString('base64url')));
      tally.finish();
    });
  });
}
