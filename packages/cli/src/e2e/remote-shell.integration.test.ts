/**
 * Issue 12 acceptance, shells: the real CLI binary (under a pseudo-terminal where a person would type) → the real
 * server → the real agent → `docker exec` in a service container deployed with `flotilla deploy`, or a process on
 * the device's host. Typing, resizing, Ctrl-C, exit statuses, one-shot commands with stdout and stderr apart,
 * who may open a shell, and a revoked key or membership ending an open one.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RemoteSession } from '@flotilla/protocol';
import { waitFor } from '@flotilla/testkit';
import { flotilla, flotillaJson } from '../test-support/cli-runner.js';
import { type PtyProcess, spawnCliInPty } from '../test-support/pty.js';
import { type RemoteDevice, openStreams, sha256, startRemoteDevice, within } from './remote-device.js';

let device: RemoteDevice;

before(async () => {
  device = await startRemoteDevice('e2essh', { deploy: true });
});

after(async () => {
  await device?.close();
});

/** busybox sh's prompt as root in `/`. */
const PROMPT = /\/ # /;

/** `flotilla ssh <device> web` under a terminal, once the service's shell printed its prompt. */
async function serviceShell(configDir: string, size = { cols: 80, rows: 24 }): Promise<PtyProcess> {
  const pty = spawnCliInPty(['ssh', device.uuid, 'web'], { configDir, ...size });
  try {
    await pty.waitForOutput(PROMPT, 15_000);
    return pty;
  } catch (error) {
    pty.kill('SIGKILL');
    throw error;
  }
}

/** Types `stty size` until the shell reports `rows cols` (a resize reaches the container asynchronously). */
async function sttySize(pty: PtyProcess, expected: string): Promise<string> {
  let seen = '';
  for (let attempt = 0; attempt < 20 && seen !== expected; attempt++) {
    if (attempt > 0) await sleep(100);
    pty.write('stty size\r');
    seen = (await pty.waitForOutput(/\r\n(\d+ \d+)\r\n/))[1] ?? '';
    await pty.waitForOutput(PROMPT);
  }
  return seen;
}

test('a service shell under a terminal: typing, the terminal size, a resize, the exit status', async () => {
  const pty = await serviceShell(device.admin);
  try {
    pty.write('echo $((6*7))\r');
    await pty.waitForOutput(/\r\n42\r\n/);
    assert.doesNotMatch(pty.output(), /\r\r\n/, 'the device’s output reaches the terminal unchanged');
    await pty.waitForOutput(PROMPT);
    assert.equal(await sttySize(pty, '24 80'), '24 80', 'the shell starts with the local terminal’s size');
    pty.resize(132, 40);
    assert.equal(await sttySize(pty, '40 132'), '40 132', 'the resize reached the container’s terminal');
    pty.write('exit 3\r');
    const { exitCode } = await within(pty.exit, 10_000, 'the CLI exiting after `exit 3`');
    assert.equal(exitCode, 3);
  } finally {
    pty.kill('SIGKILL');
  }
});

test('Ctrl-C reaches the remote command, and the shell goes on', async () => {
  const pty = await serviceShell(device.admin);
  try {
    pty.write('sleep 30\r');
    await pty.waitForOutput(/sleep 30\r\n/);
    await sleep(500); // the shell forks sleep after echoing the line
    pty.write('\x03');
    // Without the interrupt the prompt would come back after 30 s.
    await pty.waitForOutput(PROMPT, 5_000);
    pty.write('echo alive-$((2+3))\r');
    await pty.waitForOutput(/\r\nalive-5\r\n/);
    pty.write('exit\r');
    assert.equal((await within(pty.exit, 10_000, 'the CLI exiting')).exitCode, 0);
  } finally {
    pty.kill('SIGKILL');
  }
});

test('one-shot commands: stdout and stderr apart, the exit status, piped stdin, the host', async () => {
  const both = await flotilla(device.admin, ['ssh', device.uuid, 'web', '--', 'echo out; echo err >&2; exit 5']);
  assert.deepEqual(both, { code: 5, stdout: 'out\n', stderr: 'err\n' });
  const piped = await flotilla(device.admin, ['ssh', device.uuid, 'web', '--', 'cat'], { input: 'hello\n' });
  assert.deepEqual(piped, { code: 0, stdout: 'hello\n', stderr: '' });
  // Megabytes of stdin, many frames and windows, reach the command whole and in order.
  const input = randomBytes(4 * 1024 * 1024);
  const digest = await flotilla(device.admin, ['ssh', device.uuid, 'web', '--', 'sha256sum'], { input });
  assert.deepEqual(digest, { code: 0, stdout: `${sha256(input)}  -\n`, stderr: '' });
  const host = await flotilla(device.admin, ['ssh', device.uuid, '--', 'echo host']);
  assert.deepEqual(host, { code: 0, stdout: 'host\n', stderr: '' });
});

test('another organization’s user finds no device; an observer may read the audit log but not open a shell', async () => {
  const eve = await device.user('eve');
  assert.equal((await flotilla(eve, ['org', 'create', 'Eve Labs', '--handle', 'eve-labs'])).code, 0);
  const stranger = await flotilla(eve, ['ssh', device.uuid, '--', 'true']);
  assert.notEqual(stranger.code, 0);
  assert.match(stranger.stderr, /\(DEVICE_NOT_FOUND\)/);
  assert.equal(stranger.stdout, '');

  const olga = await device.user('olga', 'observer');
  const observer = await flotilla(olga, ['ssh', device.uuid, '--', 'true']);
  assert.notEqual(observer.code, 0);
  assert.match(observer.stderr, /\(FORBIDDEN\)/);
  const publicUrl = await flotilla(olga, ['device', 'public-url', 'enable', device.uuid, '--port', '80']);
  assert.notEqual(publicUrl.code, 0);
  // A write route: the observer's organizations drop out of it (the server's policy for every write).
  assert.match(publicUrl.stderr, /observers only read\) \(DEVICE_NOT_FOUND\)/);
  const sessions = await flotillaJson<RemoteSession[]>(olga, ['sessions', '--device', device.uuid]);
  assert.ok(
    sessions.some((s) => s.kind === 'shell' && s.user?.username === 'admin'),
    'the observer reads the sessions opened earlier',
  );
  assert.ok(!sessions.some((s) => s.user?.username === 'olga'), 'a refused shell is not a session');
});

test('deleting the key, or removing the membership, that opened a shell ends it at once', async () => {
  const mia = await device.user('mia', 'member');
  const key = await flotillaJson<{ id: number; key: string }>(mia, ['key', 'create', 'ssh']);
  const miaByKey = `${mia}-key`;
  await flotillaJson(miaByKey, ['login', '--url', device.server.url, '--api-key', key.key]);

  const byKey = await serviceShell(miaByKey);
  try {
    byKey.write('echo $((40+2))\r');
    await byKey.waitForOutput(/\r\n42\r\n/);
    assert.equal((await flotilla(mia, ['key', 'rm', String(key.id)])).code, 0);
    const { exitCode } = await within(byKey.exit, 5_000, 'the shell ending after its key was deleted');
    assert.notEqual(exitCode, 0);
    assert.match(byKey.output(), /revoked.*\(FORBIDDEN\)/s);
  } finally {
    byKey.kill('SIGKILL');
  }

  const byMembership = await serviceShell(mia);
  try {
    assert.equal((await flotilla(device.admin, ['org', 'remove', device.org, 'mia'])).code, 0);
    const { exitCode } = await within(byMembership.exit, 5_000, 'the shell ending after the membership was removed');
    assert.notEqual(exitCode, 0);
    assert.match(byMembership.output(), /\(FORBIDDEN\)/);
  } finally {
    byMembership.kill('SIGKILL');
  }

  const mine = (await flotillaJson<RemoteSession[]>(device.admin, ['sessions', '--device', device.uuid])).filter(
    (s) => s.user?.username === 'mia',
  );
  assert.equal(mine.length, 2);
  for (const session of mine) {
    assert.equal(session.kind, 'shell');
    assert.equal(session.target, 'service web');
    assert.notEqual(session.endedAt, null);
    assert.equal(session.endReason, 'revoked');
  }
});

test('every stream the tests opened is closed on the server and recorded as ended', async () => {
  await waitFor('no open stream on the server', async () => (await openStreams(device.server)) === 0, {
    timeoutMs: 10_000,
  });
  const sessions = await flotillaJson<RemoteSession[]>(device.admin, ['sessions', '--device', device.uuid]);
  // Each shell and one-shot above is one session, recorded once: 2 + 1 + 4 (one-shots) + 2 (revoked); the refused
  // ones are none.
  assert.equal(sessions.length, 8);
  assert.deepEqual(
    sessions.filter((s) => s.endedAt === null),
    [],
  );
});
