import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startServer } from '@flotilla/server';
import { tempDir } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';

test('users, organizations and invitations through the real binary', async () => {
  const server = await startServer({ host: '127.0.0.1', port: 0 });
  const dir = await tempDir('flotilla-cli-org-');
  try {
    const admin = join(dir.path, 'admin');
    const dora = join(dir.path, 'dora');
    assert.ok(server.admin);
    assert.equal((await flotilla(admin, ['login', '--url', server.url, '--api-key', server.admin.apiKey])).code, 0);
    const who = await flotillaJson<{ serverAdmin: boolean }>(admin, ['whoami']);
    assert.equal(who.serverAdmin, true);
    assert.match((await flotilla(admin, ['whoami'])).stdout, /^server admin:\s+yes$/m);

    let r = await flotilla(admin, ['user', 'create', 'dora', '--password', 'dora-password']);
    assert.equal(r.code, 0, r.stderr);
    const login = ['login', '--url', server.url, '--username', 'dora', '--password', 'dora-password'];
    assert.equal((await flotilla(dora, login)).code, 0);
    r = await flotilla(dora, ['user', 'create', 'eve', '--password', 'eve-password']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'error: only server administrators may create users (FORBIDDEN)\n');

    assert.equal((await flotilla(admin, ['org', 'create', 'Lab', '--handle', 'lab'])).code, 0);
    r = await flotilla(admin, ['org', 'invite', 'lab', 'dora', '--role', 'admin']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /invited dora to lab as admin/);
    // A user that does not exist gets the same answer.
    const ghost = await flotilla(admin, ['org', 'invite', 'lab', 'ghost', '--role', 'admin']);
    assert.equal(ghost.stdout.replace('ghost', 'dora'), r.stdout);
    assert.equal((await flotilla(admin, ['org', 'invite', 'lab', 'dora', '--role', 'owner'])).code, 1);

    const invitations = await flotillaJson<{ id: number; organization: { handle: string } }[]>(dora, ['invitations']);
    assert.deepEqual(
      invitations.map((i) => i.organization.handle),
      ['lab'],
    );
    r = await flotilla(dora, ['invitation', 'accept', String(invitations[0]?.id)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'joined lab as admin\n');
    assert.equal((await flotilla(dora, ['invitations'])).stdout, 'no pending invitations\n');
    r = await flotilla(admin, ['org', 'members', 'lab']);
    assert.match(r.stdout, /^dora\s+admin/m);
    r = await flotilla(dora, ['invitation', 'decline', String(invitations[0]?.id)]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\(INVITATION_NOT_FOUND\)\n$/);
    r = await flotilla(admin, ['org', 'role', 'lab', 'dora', 'observer']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'dora is now observer in lab\n');
    assert.match((await flotilla(admin, ['org', 'members', 'lab'])).stdout, /^dora\s+observer/m);
    r = await flotilla(dora, ['org', 'role', 'lab', 'admin', 'observer']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\(observers only read\) \(ORGANIZATION_NOT_FOUND\)\n$/);
    r = await flotilla(admin, ['org', 'role', 'lab', 'admin', 'member']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /\(LAST_ADMIN\)\n$/);
    r = await flotilla(admin, ['org', 'role', 'lab', 'ghost', 'member']);
    assert.match(r.stderr, /no member "ghost" in lab \(USER_NOT_FOUND\)\n$/);
    assert.equal((await flotilla(admin, ['org', 'role', 'lab', 'dora', 'owner'])).code, 1);
    assert.equal((await flotilla(admin, ['org', 'remove', 'lab', 'dora'])).code, 0);
    assert.deepEqual(await flotillaJson(dora, ['org', 'list']), []);
  } finally {
    await server.close();
    await dir.remove();
  }
});
