import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RemoteSession } from '@flotilla/protocol';
import { thrownCode } from '@flotilla/testkit';
import { portOption } from './public-url.js';
import { formatBytes } from '@flotilla/protocol';
import { formatDuration, sessionsTable } from './sessions.js';
import { shellMode, sshInvocation, wordsAfterDash } from './ssh.js';

test('ssh: device, service and the command after --', () => {
  const cases: Array<[string[], number | undefined, ReturnType<typeof sshInvocation>]> = [
    [['probe-1'], undefined, { device: 'probe-1', service: undefined, command: undefined }],
    [['probe-1', 'web'], undefined, { device: 'probe-1', service: 'web', command: undefined }],
    [['probe-1', 'ls', '-l'], 2, { device: 'probe-1', service: undefined, command: 'ls -l' }],
    [['abcdef0', 'db', 'psql', '-c', 'select 1'], 3, { device: 'abcdef0', service: 'db', command: 'psql -c select 1' }],
    // Words are joined with spaces, as ssh does: quoting is the device shell's business.
    [['probe-1', 'echo', 'a  b'], 2, { device: 'probe-1', service: undefined, command: 'echo a  b' }],
  ];
  for (const [operands, afterDash, expected] of cases)
    assert.deepEqual(sshInvocation(operands, afterDash), expected, operands.join(' '));
  assert.throws(
    () => sshInvocation(['probe-1', 'web', 'ls'], undefined),
    /unexpected argument "ls": put the command after --/,
  );
  assert.throws(() => sshInvocation(['probe-1'], 0), /give a command after --/);
  assert.throws(() => sshInvocation(['ls'], 1), /give a device/);
  assert.equal(
    thrownCode(() => sshInvocation(['probe-1', 'bad service'], undefined)),
    'VALIDATION_FAILED',
  );
  assert.equal(
    thrownCode(() => sshInvocation(['bad\tdevice'], undefined)),
    'VALIDATION_FAILED',
  );
});

test('ssh: how many words followed the first --', () => {
  assert.equal(wordsAfterDash(['node', 'main.js', 'ssh', 'dev']), undefined);
  assert.equal(wordsAfterDash(['node', 'main.js', 'ssh', 'dev', '--']), 0);
  assert.equal(wordsAfterDash(['node', 'main.js', 'ssh', 'dev', '--', 'grep', '--', 'x']), 3);
});

test('ssh: terminal, raw mode and stdin by invocation and by what stdin and stdout are', () => {
  const shell = { device: 'd' };
  const command = { device: 'd', command: 'cat' };
  // [invocation, -t, stdin is a TTY, stdout is a TTY] → mode
  const cases: Array<[typeof shell, boolean, boolean, boolean, ReturnType<typeof shellMode>]> = [
    [shell, false, true, true, { tty: true, raw: true, readStdin: true }],
    [shell, false, false, true, { tty: false, raw: false, readStdin: true }], // echo ls | flotilla ssh d
    [shell, false, true, false, { tty: false, raw: false, readStdin: true }], // flotilla ssh d > log
    [shell, true, false, false, { tty: true, raw: false, readStdin: true }],
    [command, false, true, true, { tty: false, raw: false, readStdin: false }], // stdin not read: empty stdin
    [command, false, false, false, { tty: false, raw: false, readStdin: true }], // echo hi | flotilla ssh d -- cat
    [command, true, true, true, { tty: true, raw: true, readStdin: true }], // flotilla ssh -t d -- top
    [command, true, false, true, { tty: true, raw: false, readStdin: true }],
  ];
  for (const [invocation, forceTty, stdinTty, stdoutTty, expected] of cases)
    assert.deepEqual(
      shellMode(invocation, forceTty, stdinTty, stdoutTty),
      expected,
      JSON.stringify({ invocation, forceTty, stdinTty, stdoutTty }),
    );
});

test('public-url --port', () => {
  assert.equal(portOption('8080'), 8080);
  assert.throws(() => portOption('0'), /invalid --port "0": give a port from 1 to 65535$/);
  assert.throws(() => portOption('http'), /invalid --port "http"/);
});

test('sessions: sizes, durations and the table', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(20 * 1024 * 1024), '20.0 MiB');
  assert.equal(formatBytes(3 * 1024 ** 4), '3.0 TiB');
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(45_400), '45s');
  assert.equal(formatDuration(187_000), '3m 07s');
  assert.equal(formatDuration(2 * 3600_000 + 5 * 60_000), '2h 05m');
  assert.equal(formatDuration(3 * 86_400_000 + 4 * 3600_000), '3d 4h');
  const session: RemoteSession = {
    id: '1',
    kind: 'shell',
    device: { uuid: 'c0ffee00112233445566778899aabbcc', name: 'probe-1' },
    user: { id: 1, username: 'dora' },
    target: 'host',
    remoteAddress: '127.0.0.1',
    startedAt: '2026-01-02T03:04:05.678Z',
    endedAt: '2026-01-02T03:07:12.000Z',
    bytesIn: 12,
    bytesOut: 5000,
    endReason: 'closed',
  };
  const open: RemoteSession = {
    ...session,
    kind: 'public-url',
    device: { uuid: session.device.uuid, name: null },
    user: null,
    target: 'port 80',
    endedAt: null,
    endReason: null,
  };
  const lines = sessionsTable([session, open]).split('\n');
  assert.match(lines[0]!, /^KIND\s+DEVICE\s+USER\s+TARGET\s+FROM\s+STARTED\s+DURATION\s+IN\s+OUT\s+END$/);
  assert.match(
    lines[1]!,
    /^shell\s+probe-1\s+dora\s+host\s+127\.0\.0\.1\s+2026-01-02 03:04:05\s+3m 06s\s+12 B\s+4\.9 KiB\s+closed$/,
  );
  assert.match(
    lines[2]!,
    /^public-url\s+c0ffee0\s+\(public\)\s+port 80\s+127\.0\.0\.1\s+2026-01-02 03:04:05\s+open\s+12 B\s+4\.9 KiB\s+-$/,
  );
  assert.equal(sessionsTable([]), 'nothing to show\n');
});
