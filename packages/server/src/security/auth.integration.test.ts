import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { generateDeviceUuid, generateKey } from '@flotilla/protocol';
import { testDatabases } from '@flotilla/testkit';
import type { TestDatabase } from '@flotilla/testkit';
import { startServer } from '../server.js';
import type { RunningServer } from '../server.js';
import { answerData } from '../testing/answer-data.js';

/**
 * Attacks on identity and tenancy against a live server on loopback. Requests can come from two addresses:
 * 127.0.0.1 (the attacker) and 127.0.0.2 (the real user elsewhere), both on Linux's loopback network.
 */
const ATTACKER = '127.0.0.1';
const ELSEWHERE = '127.0.0.2';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON answers
  data: any;
}

function call(
  baseUrl: string,
  method: string,
  path: string,
  options: { key?: string; basic?: [string, string]; body?: unknown; from?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (options.key) headers.authorization = `Bearer ${options.key}`;
  if (options.basic) headers.authorization = `Basic ${Buffer.from(options.basic.join(':')).toString('base64')}`;
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  if (payload !== undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { method, headers, localAddress: options.from ?? ATTACKER }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const data = answerData(text, (name) => res.headers[name]);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, data });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

interface Live {
  server: RunningServer;
  url: string;
  adminKey: string;
  adminPassword: string;
  /** PostgreSQL database the server runs on; undefined on SQLite. */
  databaseUrl: string | undefined;
  close: () => Promise<void>;
}

async function live(testDb: TestDatabase): Promise<Live> {
  const created = await testDb.create();
  const server = await startServer({
    host: '127.0.0.1',
    port: 0,
    ...(created.url ? { databaseUrl: created.url } : {}),
  });
  const admin = server.admin;
  assert.ok(admin);
  return {
    server,
    url: server.url,
    adminKey: admin.apiKey,
    adminPassword: admin.password,
    databaseUrl: created.url,
    close: async () => {
      await server.close();
      await created.drop();
    },
  };
}

function countBy(statuses: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const s of statuses) out[s] = (out[s] ?? 0) + 1;
  return out;
}

/** A user made by the server admin, with an API key of their own. */
async function makeUser(
  s: Live,
  username: string,
): Promise<{ id: number; key: string; keyId: number; password: string }> {
  const password = `${username}-password`;
  const created = await call(s.url, 'POST', '/api/v1/users', { key: s.adminKey, body: { username, password } });
  assert.equal(created.status, 201, JSON.stringify(created.data));
  const login = await call(s.url, 'POST', '/api/v1/auth/login', { body: { username, password }, from: ELSEWHERE });
  assert.equal(login.status, 200, JSON.stringify(login.data));
  const key = await call(s.url, 'POST', '/api/v1/api-keys', { key: login.data.token, body: { name: 'test' } });
  assert.equal(key.status, 201);
  return { id: created.data.id, key: key.data.key, keyId: key.data.id, password };
}

/** Invites `username` into `org` as `role` (as `adminKey`) and accepts as `userKey`. */
async function join(s: Live, adminKey: string, org: string, username: string, role: string, userKey: string) {
  const invited = await call(s.url, 'POST', `/api/v1/organizations/${org}/invitations`, {
    key: adminKey,
    body: { username, role },
  });
  assert.equal(invited.status, 202, JSON.stringify(invited.data));
  const pending = await call(s.url, 'GET', '/api/v1/invitations', { key: userKey });
  const invitation = pending.data.items.find(
    (i: { organization: { handle: string } }) => i.organization.handle === org,
  );
  assert.ok(invitation, JSON.stringify(pending.data));
  const accepted = await call(s.url, 'POST', `/api/v1/invitations/${invitation.id}/accept`, { key: userKey });
  assert.equal(accepted.status, 200, JSON.stringify(accepted.data));
}

/** A fleet in `org` with one registered device; returns what a device and a follower need. */
async function fleetWithDevice(s: Live, key: string, slug: string, org: string) {
  const fleet = await call(s.url, 'POST', '/api/v1/fleets', { key, body: { name: slug, slug, organization: org } });
  assert.equal(fleet.status, 201, JSON.stringify(fleet.data));
  const pk = await call(s.url, 'POST', `/api/v1/fleets/${slug}/provisioning-keys`, { key, body: {} });
  const uuid = generateDeviceUuid();
  const registered = await call(s.url, 'POST', '/device/register', {
    key: pk.data.key,
    body: { application: fleet.data.id, uuid, device_type: 'generic-amd64', api_key: generateKey() },
  });
  assert.equal(registered.status, 201, JSON.stringify(registered.data));
  return { fleetId: fleet.data.id as number, uuid };
}

/** Follows a device's logs; `ended` resolves with the time the server ended the stream. */
async function follow(s: Live, uuid: string, key: string): Promise<{ ended: Promise<number>; abort: () => void }> {
  const controller = new AbortController();
  const response = await fetch(`${s.url}/api/v1/devices/${uuid}/logs?follow=1`, {
    headers: { authorization: `Bearer ${key}` },
    signal: controller.signal,
  });
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(': following')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the stream ended before following');
    text += decoder.decode(value, { stream: true });
  }
  const ended = (async () => {
    try {
      for (;;) if ((await reader.read()).done) return Date.now();
    } catch {
      return Number.POSITIVE_INFINITY;
    }
  })();
  return { ended, abort: () => controller.abort() };
}

/** Resolves the stream's end time, or +Infinity when it is still open after `ms`. */
function endedWithin(ended: Promise<number>, ms: number): Promise<number> {
  return Promise.race([ended, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), ms))]);
}

for (const testDb of testDatabases()) {
  describe(`security: identity and tenancy (${testDb.label})`, () => {
    let s: Live;
    before(async () => {
      s = await live(testDb);
    });
    after(() => s.close());

    test('password guessing through the registry is limited per username and address', async () => {
      const started = Date.now();
      const statuses: number[] = [];
      for (let i = 0; i < 300; i++) {
        const basic: [string, string] = ['admin', `guess-${i}`];
        const answer =
          i % 2 === 0
            ? await call(s.url, 'GET', '/auth/v1/token?scope=repository:a/b:pull', { basic })
            : await call(s.url, 'GET', '/v2/', { basic });
        statuses.push(answer.status);
        if (answer.status === 429) {
          assert.equal(answer.data.errors[0].code, 'TOOMANYREQUESTS');
          assert.ok(Number(answer.headers['retry-after']) >= 1);
        }
      }
      const counts = countBy(statuses);
      const refused = counts[429] ?? 0;
      const seconds = (Date.now() - started) / 1000;
      // The right password from the guesser's address is refused while it is blocked, on every path.
      const rightHere = await call(s.url, 'GET', '/auth/v1/token', { basic: ['admin', s.adminPassword] });
      const loginHere = await call(s.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'admin', password: s.adminPassword },
      });
      // The real user, elsewhere, is not locked out.
      const rightElsewhere = await call(s.url, 'GET', '/auth/v1/token', {
        basic: ['admin', s.adminPassword],
        from: ELSEWHERE,
      });
      const v2Elsewhere = await call(s.url, 'GET', '/v2/', { basic: ['admin', s.adminPassword], from: ELSEWHERE });
      const loginElsewhere = await call(s.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'admin', password: s.adminPassword },
        from: ELSEWHERE,
      });
      console.log(
        `security: auth: registry password guessing (${testDb.label}): 300 attempts in ${seconds.toFixed(1)} s, ` +
          `${refused} refused 429, ${counts[401] ?? 0} judged 401, ${counts[200] ?? 0} accepted; right password ` +
          `from the guesser: ${rightHere.status}/${loginHere.status}, from elsewhere: ${rightElsewhere.status}/` +
          `${v2Elsewhere.status}/${loginElsewhere.status}`,
      );
      assert.equal(counts[200] ?? 0, 0);
      assert.ok(refused >= 285, `only ${refused} of 300 refused: ${JSON.stringify(counts)}`);
      assert.equal(rightHere.status, 429);
      assert.equal(rightHere.data.errors[0].code, 'TOOMANYREQUESTS');
      assert.equal(loginHere.status, 429);
      assert.equal(loginHere.data.error.code, 'RATE_LIMITED');
      assert.ok(Number(loginHere.headers['retry-after']) >= 1);
      assert.equal(rightElsewhere.status, 200);
      assert.equal(v2Elsewhere.status, 200);
      assert.equal(loginElsewhere.status, 200);
    });

    test('key guessing is limited per address; right keys from elsewhere still work', async () => {
      const statuses: number[] = [];
      const paths = ['/api/v1/whoami', '/device/v3/00000000000000000000000000000000/state', '/api/v1/fleets'];
      for (let i = 0; i < 400; i++) {
        const key = `guess${String(i).padStart(60, '0')}`;
        statuses.push((await call(s.url, 'GET', paths[i % paths.length] ?? '/', { key, from: '127.0.0.3' })).status);
      }
      const counts = countBy(statuses);
      const blockedRight = await call(s.url, 'GET', '/api/v1/whoami', { key: s.adminKey, from: '127.0.0.3' });
      const elsewhere = await call(s.url, 'GET', '/api/v1/whoami', { key: s.adminKey, from: '127.0.0.4' });
      console.log(
        `security: auth: key guessing (${testDb.label}): 400 attempts, ${counts[429] ?? 0} refused 429, ` +
          `${counts[401] ?? 0} judged 401; right key from the guesser ${blockedRight.status}, elsewhere ${elsewhere.status}`,
      );
      assert.equal(counts[200] ?? 0, 0);
      assert.ok((counts[429] ?? 0) >= 100, JSON.stringify(counts));
      assert.equal(blockedRight.status, 429);
      assert.equal(blockedRight.data.error.code, 'RATE_LIMITED');
      assert.equal(elsewhere.status, 200);
    });
    test('only a server administrator creates users', async () => {
      const bob = await makeUser(s, 'bob');
      assert.equal(
        (
          await call(s.url, 'POST', '/api/v1/organizations', {
            key: bob.key,
            body: { name: 'Bob Co', handle: 'bobco' },
          })
        ).status,
        201,
      );
      const attempts = [
        { username: 'eve', password: 'eve-password' },
        { username: 'mallory', password: 'mallory-password', serverAdmin: true },
      ];
      let refused = 0;
      for (const body of attempts) {
        const answer = await call(s.url, 'POST', '/api/v1/users', { key: bob.key, body });
        if (answer.status === 403 && answer.data.error.code === 'FORBIDDEN') refused++;
      }
      const who = await call(s.url, 'GET', '/api/v1/whoami', { key: bob.key });
      const adminWho = await call(s.url, 'GET', '/api/v1/whoami', { key: s.adminKey });
      console.log(
        `security: auth: user creation by an org admin (${testDb.label}): ${attempts.length} attempts, ${refused} refused`,
      );
      assert.equal(refused, attempts.length);
      assert.equal(who.data.serverAdmin, false);
      assert.equal(adminWho.data.serverAdmin, true);
      const byAdmin = await call(s.url, 'POST', '/api/v1/users', {
        key: s.adminKey,
        body: { username: 'carol', password: 'carol-password' },
      });
      assert.equal(byAdmin.status, 201);
    });

    test('usernames cannot be probed and nobody joins without accepting', async () => {
      const bob = await makeUser(s, 'bob2');
      const dora = await makeUser(s, 'dora');
      assert.equal(
        (await call(s.url, 'POST', '/api/v1/organizations', { key: bob.key, body: { name: 'Probe', handle: 'probe' } }))
          .status,
        201,
      );
      // The old direct add: 201 for a user that exists, 404 for one that does not.
      const direct = [
        await call(s.url, 'POST', '/api/v1/organizations/probe/members', { key: bob.key, body: { username: 'dora' } }),
        await call(s.url, 'POST', '/api/v1/organizations/probe/members', {
          key: bob.key,
          body: { username: 'nobody1' },
        }),
      ];
      const invites = [];
      for (const username of ['dora', 'nobody1', 'admin', 'nobody2']) {
        const answer = await call(s.url, 'POST', '/api/v1/organizations/probe/invitations', {
          key: bob.key,
          body: { username },
        });
        invites.push(`${answer.status} ${JSON.stringify(answer.data)} ${Object.keys(answer.headers).sort().join(',')}`);
      }
      const distinct = new Set(invites).size;
      const membersBefore = await call(s.url, 'GET', '/api/v1/organizations/probe/members', { key: bob.key });
      const doraOrgsBefore = await call(s.url, 'GET', '/api/v1/organizations', { key: dora.key });
      // Someone else cannot accept dora's invitation.
      const pending = await call(s.url, 'GET', '/api/v1/invitations', { key: dora.key });
      const invitation = pending.data?.items?.[0];
      const stolen = await call(s.url, 'POST', `/api/v1/invitations/${invitation?.id ?? 1}/accept`, {
        key: s.adminKey,
      });
      const accepted = await call(s.url, 'POST', `/api/v1/invitations/${invitation?.id ?? 1}/accept`, {
        key: dora.key,
      });
      const again = await call(s.url, 'POST', `/api/v1/invitations/${invitation?.id ?? 1}/accept`, { key: dora.key });
      const membersAfter = await call(s.url, 'GET', '/api/v1/organizations/probe/members', { key: bob.key });
      const names = (r: Answer) => (r.data?.items ?? []).map((m: { user: { username: string } }) => m.user.username);
      const refusedDirect = direct.filter((d) => d.status === 404 && d.data.error.code === 'NOT_FOUND').length;
      console.log(
        `security: auth: member probing (${testDb.label}): ${direct.length + invites.length} attempts, ` +
          `${refusedDirect} direct adds refused, ${distinct} distinct invitation answer(s); joined without accepting: ` +
          `${names(membersBefore).includes('dora')}`,
      );
      assert.equal(refusedDirect, direct.length, JSON.stringify(direct.map((d) => d.status)));
      assert.equal(distinct, 1, invites.join('\n'));
      assert.ok(invites[0]?.startsWith('202 {}'));
      assert.deepEqual(names(membersBefore), ['bob2']);
      assert.deepEqual(
        doraOrgsBefore.data.items.map((o: { handle: string }) => o.handle),
        [],
      );
      assert.equal(pending.data.items.length, 1);
      assert.equal(pending.data.items[0].organization.handle, 'probe');
      assert.equal(pending.data.items[0].invitedBy, 'bob2');
      assert.equal(stolen.status, 404);
      assert.equal(stolen.data.error.code, 'INVITATION_NOT_FOUND');
      assert.equal(accepted.status, 200);
      assert.equal(again.status, 404);
      assert.deepEqual(names(membersAfter), ['bob2', 'dora']);
      // The admin's invitation is visible to the admin, and a declined one is gone.
      const adminPending = await call(s.url, 'GET', '/api/v1/invitations', { key: s.adminKey });
      assert.equal(adminPending.data.items.length, 1);
      const declined = await call(s.url, 'POST', `/api/v1/invitations/${adminPending.data.items[0].id}/decline`, {
        key: s.adminKey,
      });
      assert.equal(declined.status, 204);
      assert.equal((await call(s.url, 'GET', '/api/v1/invitations', { key: s.adminKey })).data.items.length, 0);
      // A user created later under an invited name never sees that invitation.
      await makeUser(s, 'nobody1');
      const late = await call(s.url, 'POST', '/api/v1/auth/login', {
        body: { username: 'nobody1', password: 'nobody1-password' },
        from: ELSEWHERE,
      });
      assert.equal((await call(s.url, 'GET', '/api/v1/invitations', { key: late.data.token })).data.items.length, 0);
    });

    test('keys cannot be created already expired', async () => {
      const past = new Date(Date.now() - 60_000).toISOString();
      const fleet = await call(s.url, 'POST', '/api/v1/fleets', {
        key: s.adminKey,
        body: { name: 'exp', slug: 'exp' },
      });
      assert.equal(fleet.status, 201);
      const attempts = [
        await call(s.url, 'POST', '/api/v1/api-keys', { key: s.adminKey, body: { name: 'old', expiresAt: past } }),
        await call(s.url, 'POST', '/api/v1/fleets/exp/provisioning-keys', {
          key: s.adminKey,
          body: { expiresAt: past },
        }),
        await call(s.url, 'POST', '/api/v1/fleets/exp/config-json', {
          key: s.adminKey,
          body: { provisioningKeyExpiry: past },
        }),
      ];
      const refused = attempts.filter((a) => a.status === 400 && a.data.error.code === 'VALIDATION_FAILED').length;
      console.log(
        `security: auth: keys born expired (${testDb.label}): ${attempts.length} attempts, ${refused} refused`,
      );
      assert.equal(refused, attempts.length, JSON.stringify(attempts.map((a) => a.status)));
      const future = new Date(Date.now() + 3600_000).toISOString();
      assert.equal(
        (await call(s.url, 'POST', '/api/v1/api-keys', { key: s.adminKey, body: { name: 'new', expiresAt: future } }))
          .status,
        201,
      );
    });

    test('provisioning keys: admins only, and dead once their creator is no longer an admin', async () => {
      const owner = await makeUser(s, 'owner');
      const ada = await makeUser(s, 'ada');
      const mem = await makeUser(s, 'mem');
      assert.equal(
        (await call(s.url, 'POST', '/api/v1/organizations', { key: owner.key, body: { name: 'PK', handle: 'pkorg' } }))
          .status,
        201,
      );
      await join(s, owner.key, 'pkorg', 'ada', 'admin', ada.key);
      await join(s, owner.key, 'pkorg', 'mem', 'member', mem.key);
      const fleet = await call(s.url, 'POST', '/api/v1/fleets', {
        key: owner.key,
        body: { name: 'pkf', slug: 'pkf', organization: 'pkorg' },
      });
      assert.equal(fleet.status, 201);
      const byMember = [
        await call(s.url, 'POST', '/api/v1/fleets/pkf/provisioning-keys', { key: mem.key, body: {} }),
        await call(s.url, 'POST', '/api/v1/fleets/pkf/config-json', { key: mem.key, body: {} }),
      ];
      const adaKey = await call(s.url, 'POST', '/api/v1/fleets/pkf/provisioning-keys', { key: ada.key, body: {} });
      assert.equal(adaKey.status, 201);
      const register = (key: string) =>
        call(s.url, 'POST', '/device/register', {
          key,
          body: { application: fleet.data.id, uuid: generateDeviceUuid(), device_type: 'x', api_key: generateKey() },
        });
      const first = await register(adaKey.data.key);
      assert.equal(first.status, 201);
      // Ada leaves: her key stops at once, for registration and for key exchange.
      assert.equal(
        (await call(s.url, 'DELETE', `/api/v1/organizations/pkorg/members/${ada.id}`, { key: owner.key })).status,
        204,
      );
      const afterLeaving = [
        await register(adaKey.data.key),
        await call(s.url, 'POST', `/api-key/device/${first.data.id}/device-key`, {
          key: adaKey.data.key,
          body: { apiKey: generateKey() },
        }),
      ];
      // The member's key, if it was made at all, is dead as well once it is used.
      const memberKeys = byMember.filter((a) => a.status === 201);
      for (const made of memberKeys) afterLeaving.push(await register(made.data.key ?? made.data.provisioningApiKey));
      const refusedCreate = byMember.filter((a) => a.status === 403 && a.data.error.code === 'FORBIDDEN').length;
      const refusedUse = afterLeaving.filter((a) => a.status === 401).length;
      console.log(
        `security: auth: provisioning keys (${testDb.label}): ${byMember.length} creations by a member, ` +
          `${refusedCreate} refused; ${afterLeaving.length} uses after the creator left, ${refusedUse} refused`,
      );
      assert.equal(refusedCreate, byMember.length);
      assert.equal(refusedUse, afterLeaving.length, JSON.stringify(afterLeaving.map((a) => a.status)));
      assert.equal(afterLeaving[0]?.data.error.code, 'PROVISIONING_KEY_EXPIRED');
      assert.equal(adaKey.data.createdBy?.username, 'ada');
    });

    test('revocation closes open log streams at once', async () => {
      const fol = await makeUser(s, 'follower');
      const orgOwner = await makeUser(s, 'streamowner');
      assert.equal(
        (
          await call(s.url, 'POST', '/api/v1/organizations', {
            key: orgOwner.key,
            body: { name: 'Streams', handle: 'streams' },
          })
        ).status,
        201,
      );
      await join(s, orgOwner.key, 'streams', 'follower', 'member', fol.key);
      const { uuid } = await fleetWithDevice(s, orgOwner.key, 'streamsf', 'streams');
      // 1. A key is deleted: the stream it opened ends, the key is refused, a stream of another key stays.
      const second = await call(s.url, 'POST', '/api/v1/api-keys', { key: fol.key, body: { name: 'second' } });
      const byKey = await follow(s, uuid, fol.key);
      const bySecond = await follow(s, uuid, second.data.key);
      const deletedAt = Date.now();
      assert.equal(
        (await call(s.url, 'DELETE', `/api/v1/api-keys/${fol.keyId}`, { key: second.data.key })).status,
        204,
      );
      const keyEnded = await endedWithin(byKey.ended, 3_000);
      const refusedAfterDelete = (await call(s.url, 'GET', '/api/v1/whoami', { key: fol.key })).status;
      const secondStillOpen = (await endedWithin(bySecond.ended, 300)) === Number.POSITIVE_INFINITY;
      // 2. The membership is removed: the user's other stream ends too.
      const removedAt = Date.now();
      assert.equal(
        (await call(s.url, 'DELETE', `/api/v1/organizations/streams/members/${fol.id}`, { key: orgOwner.key })).status,
        204,
      );
      const memberEnded = await endedWithin(bySecond.ended, 3_000);
      const refusedAfterRemoval = (await call(s.url, 'GET', `/api/v1/devices/${uuid}`, { key: second.data.key }))
        .status;
      byKey.abort();
      bySecond.abort();
      const keyMs = keyEnded - deletedAt;
      const memberMs = memberEnded - removedAt;
      const closed = [keyMs, memberMs].filter((ms) => ms <= 1_000).length;
      console.log(
        `security: auth: revocation (${testDb.label}): 2 open streams revoked, ${closed} closed within 1 s ` +
          `(key deleted: ${Number.isFinite(keyMs) ? `${keyMs} ms` : 'still open'}, membership removed: ` +
          `${Number.isFinite(memberMs) ? `${memberMs} ms` : 'still open'}); API after: ${refusedAfterDelete}/${refusedAfterRemoval}`,
      );
      assert.ok(secondStillOpen, "another key's stream stays open");
      assert.equal(closed, 2);
      assert.equal(refusedAfterDelete, 401);
      assert.equal(refusedAfterRemoval, 404);
    });

    test('revocation on one server node closes streams held by another', {
      skip: testDb.dialect !== 'postgres' && 'several nodes need PostgreSQL',
    }, async () => {
      const other = await startServer({ host: '127.0.0.1', port: 0, databaseUrl: s.databaseUrl! });
      try {
        const owner = await makeUser(s, 'clusterowner');
        assert.equal(
          (
            await call(s.url, 'POST', '/api/v1/organizations', {
              key: owner.key,
              body: { name: 'C', handle: 'cluster' },
            })
          ).status,
          201,
        );
        const { uuid } = await fleetWithDevice(s, owner.key, 'clusterf', 'cluster');
        const spare = await call(s.url, 'POST', '/api/v1/api-keys', { key: owner.key, body: { name: 'spare' } });
        const stream = await follow(s, uuid, owner.key);
        const deletedAt = Date.now();
        const deleted = await call(other.url, 'DELETE', `/api/v1/api-keys/${owner.keyId}`, { key: spare.data.key });
        assert.equal(deleted.status, 204);
        const ms = (await endedWithin(stream.ended, 3_000)) - deletedAt;
        stream.abort();
        console.log(
          `security: auth: revocation across nodes (${testDb.label}): 1 stream, ` +
            `${ms <= 1_000 ? 1 : 0} closed within 1 s (${Number.isFinite(ms) ? `${ms} ms` : 'still open'})`,
        );
        assert.ok(ms <= 1_000, `the stream on the other node ended after ${ms} ms`);
      } finally {
        await other.close();
      }
    });
  });
}
