import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import { harness, type Harness } from '../testing/harness.js';

for (const testDb of testDatabases()) {
  describe(`organization members: set a role by user id (${testDb.label})`, () => {
    let h: Harness;
    let org: string;
    let adminId: number;
    /** A user invited with `role` into `org` who accepted; their API key. */
    const join = async (username: string, role: string) => {
      const password = generateKey();
      assert.equal((await h.call('POST', '/api/v1/users', h.adminKey, { username, password })).statusCode, 201);
      const token = (await h.call('POST', '/api/v1/auth/login', undefined, { username, password })).data.token;
      assert.equal(
        (await h.call('POST', `/api/v1/organizations/${org}/invitations`, h.adminKey, { username, role })).statusCode,
        202,
      );
      const [invitation] = (await h.call('GET', '/api/v1/invitations', token)).data.items;
      assert.equal((await h.call('POST', `/api/v1/invitations/${invitation.id}/accept`, token)).statusCode, 200);
      const key = (await h.call('POST', '/api/v1/api-keys', token, { name: 'k' })).data.key as string;
      const who = await h.call('GET', '/api/v1/whoami', key);
      return { key, id: who.data.user.id as number };
    };
    const setRole = (userId: number, role: string, key = h.adminKey) =>
      h.call('PATCH', `/api/v1/organizations/${org}/members/${userId}`, key, { role });
    const roleOf = async (userId: number) =>
      (await h.call('GET', `/api/v1/organizations/${org}/members`, h.adminKey)).data.items.find(
        (m: { user: { id: number } }) => m.user.id === userId,
      )?.role;

    before(async () => {
      h = await harness(testDb);
      const who = await h.call('GET', '/api/v1/whoami', h.adminKey);
      org = who.data.organizations[0].handle;
      adminId = who.data.user.id;
    });
    after(() => h.close());

    test('an admin sets a role; the answer is the member; a write is refused at once for an observer', async () => {
      const mia = await join('mia', 'member');
      assert.equal((await h.call('POST', '/api/v1/fleets', mia.key, { name: 'mias' })).statusCode, 201);
      const set = await setRole(mia.id, 'observer');
      assert.equal(set.statusCode, 200, set.body);
      assert.deepEqual([set.data.user.username, set.data.role], ['mia', 'observer']);
      assert.equal(await roleOf(mia.id), 'observer');
      // The same key, the next request: the new role is in force.
      const write = await h.call('PATCH', '/api/v1/fleets/mias', mia.key, { name: 'renamed' });
      assert.equal(write.statusCode, 404, write.body);
      assert.equal((await h.call('GET', '/api/v1/fleets/mias', mia.key)).statusCode, 200, 'reads stay');
      assert.equal((await setRole(mia.id, 'member')).statusCode, 200);
      assert.equal((await h.call('PATCH', '/api/v1/fleets/mias', mia.key, { name: 'renamed' })).statusCode, 200);
    });

    test('only admins set roles; members, observers and strangers are refused', async () => {
      const max = await join('max', 'member');
      const ole = await join('ole', 'observer');
      const byMember = await setRole(max.id, 'admin', max.key);
      assert.equal(byMember.statusCode, 403, byMember.body);
      assert.equal(byMember.data.error.code, 'FORBIDDEN');
      // A write by an observer finds no organization where they may change things, as every write route says.
      const byObserver = await setRole(max.id, 'admin', ole.key);
      assert.equal(byObserver.data.error.code, 'ORGANIZATION_NOT_FOUND', byObserver.body);
      assert.match(byObserver.data.error.message, /observers only read/);
      assert.equal(await roleOf(max.id), 'member');
      const password = generateKey();
      await h.call('POST', '/api/v1/users', h.adminKey, { username: 'stranger', password });
      const token = (await h.call('POST', '/api/v1/auth/login', undefined, { username: 'stranger', password })).data
        .token;
      const stranger = await setRole(max.id, 'observer', token);
      assert.equal(stranger.data.error.code, 'ORGANIZATION_NOT_FOUND');
    });

    test('no such member, a bad role or a bad id are refused; nothing changes', async () => {
      const lone = await h.call('POST', '/api/v1/users', h.adminKey, { username: 'lone', password: generateKey() });
      const notMember = await setRole(lone.data.id, 'member');
      assert.equal(notMember.statusCode, 404);
      assert.equal(notMember.data.error.code, 'USER_NOT_FOUND');
      assert.equal((await setRole(999_999, 'member')).data.error.code, 'USER_NOT_FOUND');
      assert.equal((await setRole(adminId, 'owner')).data.error.code, 'VALIDATION_FAILED');
      const byName = await h.call('PATCH', `/api/v1/organizations/${org}/members/admin`, h.adminKey, {
        role: 'member',
      });
      assert.equal(byName.data.error.code, 'VALIDATION_FAILED');
      assert.equal(await roleOf(adminId), 'admin');
    });

    test('the last admin cannot be demoted (LAST_ADMIN); with a second admin, either may step down', async () => {
      const last = await setRole(adminId, 'member');
      assert.equal(last.statusCode, 409, last.body);
      assert.equal(last.data.error.code, 'LAST_ADMIN');
      assert.equal(await roleOf(adminId), 'admin');
      const ada = await join('ada', 'member');
      assert.equal((await setRole(ada.id, 'admin')).statusCode, 200);
      // Ada demotes the first admin, then cannot demote herself: she is the last one now.
      assert.equal((await setRole(adminId, 'observer', ada.key)).statusCode, 200);
      const self = await setRole(ada.id, 'member', ada.key);
      assert.equal(self.data.error.code, 'LAST_ADMIN');
      const removed = await h.call('DELETE', `/api/v1/organizations/${org}/members/${ada.id}`, ada.key);
      assert.equal(removed.data.error.code, 'LAST_ADMIN');
      assert.equal((await setRole(adminId, 'admin', ada.key)).statusCode, 200);
    });

    test('two admins demoting each other at once: one stays admin', async () => {
      const bea = await join('bea', 'admin');
      const cai = await join('cai', 'admin');
      // The first admin and Ada (previous test) are admins too: lower them so exactly two remain.
      const members = (await h.call('GET', `/api/v1/organizations/${org}/members`, bea.key)).data.items;
      for (const m of members as { user: { id: number }; role: string }[])
        if (m.role === 'admin' && m.user.id !== bea.id && m.user.id !== cai.id)
          assert.equal((await setRole(m.user.id, 'member', bea.key)).statusCode, 200);
      const answers = await Promise.all([setRole(cai.id, 'member', bea.key), setRole(bea.id, 'member', cai.key)]);
      // One wins; the other is LAST_ADMIN (it counted after the winner committed) or FORBIDDEN (its caller was no
      // longer an admin when it read its own role), depending on how the two interleave.
      const codes = answers.map((a) => a.statusCode).sort();
      assert.ok(
        JSON.stringify(codes) === '[200,403]' || JSON.stringify(codes) === '[200,409]',
        answers.map((a) => a.body).join('\n'),
      );
      const admins = (await h.call('GET', `/api/v1/organizations/${org}/members`, bea.key)).data.items.filter(
        (m: { role: string }) => m.role === 'admin',
      );
      assert.equal(admins.length, 1);
      const remaining = admins[0].user.id === bea.id ? bea : cai;
      assert.equal((await setRole(adminId, 'admin', remaining.key)).statusCode, 200);
    });
  });
}
