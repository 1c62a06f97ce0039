import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run, tempDir, waitFor } from '@flotilla/testkit';
import { writeCredentials } from '../credentials/credentials.js';
import { flotilla } from '../test-support/cli-runner.js';
import { type FakeRelay, startFakeRelay } from '../test-support/fake-relay.js';
import { CLI_MAIN } from '../test-support/cli-runner.js';
import { spawnCliInPty, spawnInPty } from '../test-support/pty.js';

// The real CLI binary against a fake relay+device on loopback that runs real `sh` processes (fake-relay.ts).
const UUID = 'c0ffee00112233445566778899aabbcc';
/** Every wait below is bounded by this, whatever hangs. */
const TEST_TIMEOUT_MS = 30_000;
let relay: FakeRelay;
let dir: { path: string; remove: () => Promise<void> };
let config: string;

before(async () => {
  relay = await startFakeRelay({
    devices: [
      { uuid: UUID, name: 'probe-1', services: {} },
      { uuid: 'f'.repeat(32), name: 'locked', services: {} },
    ],
    forbidden: ['locked'],
  });
  dir = await tempDir('flotilla-cli-ssh-');
  config = join(dir.path, 'config');
  await writeCredentials({ url: relay.url, token: relay.token }, { FLOTILLA_CONFIG_DIR: config });
});
after(async () => {
  await relay.close();
  await dir.remove();
});

test('one command: stdout and stderr kept apart, the exit status propagated, no terminal asked for', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const r = await flotilla(config, ['ssh', 'probe-1', '--', 'echo', 'out;', 'echo', 'err', '>&2;', 'exit', '3'], {
    timeoutMs: 20_000,
  });
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const stream = relay.streams.at(-1);
  assert.equal(stream?.query.command, 'echo out; echo err >&2; exit 3', 'the words joined with spaces, as ssh does');
  assert.equal(stream?.query.tty, '0');
  assert.equal(stream?.query.service, undefined);
});

test('stdin is piped to the command and its end is eof', { timeout: TEST_TIMEOUT_MS }, async () => {
  const input = `${'line of text\n'.repeat(20_000)}last line without newline`;
  const r = await flotilla(config, ['ssh', UUID.slice(0, 7), '--', 'cat'], { input, timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, input);
  assert.deepEqual(relay.streams.at(-1)?.controls, [{ type: 'eof' }]);
  const wc = await flotilla(config, ['ssh', 'probe-1', '--', 'wc', '-l'], { input: 'a\nb\nc\n', timeoutMs: 20_000 });
  assert.equal(wc.stdout.trim(), '3');
  // The command ends before its stdin does: the CLI stops reading and exits with its status.
  const head = await flotilla(config, ['ssh', 'probe-1', '--', 'head', '-c', '5;', 'exit', '4'], {
    input: Buffer.alloc(16 * 1024 * 1024, 'x'),
    timeoutMs: 20_000,
  });
  assert.equal(head.stdout, 'xxxxx');
  assert.equal(head.code, 4, head.stderr);
});

test('stdout back-pressure: a reader that stops reading stops the device', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const total = 64 * 1024 * 1024;
  const seen = relay.streams.length;
  const child = spawn(process.execPath, [CLI_MAIN, 'ssh', 'probe-1', '--', `head -c ${total} /dev/zero`], {
    env: { ...process.env, FLOTILLA_CONFIG_DIR: config },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    child.stdout.pause();
    await waitFor('the stream', () => relay.streams[seen], { timeoutMs: 10_000 });
    const session = () => relay.sessions[relay.sessions.length - 1]!;
    await waitFor('the device to send', () => session().bytesOut > 0, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const stalled = session().bytesOut;
    t.diagnostic(`stdout not read: the device could send ${(stalled / 2 ** 20).toFixed(1)} MiB`);
    assert.ok(stalled < 32 * 1024 * 1024, `the device sent ${stalled} bytes to a reader that reads nothing`);
    let received = 0;
    child.stdout.on('data', (chunk: Buffer) => (received += chunk.length));
    child.stdout.resume();
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
    assert.equal(received, total);
  } finally {
    child.kill('SIGKILL');
  }
});

test('-t asks for a terminal: the output comes back on stdout through the device’s pseudo-terminal', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const r = await flotilla(config, ['ssh', '-t', 'probe-1', '--', 'echo', 'to-err', '>&2;', 'test', '-t', '1'], {
    input: '',
    timeoutMs: 20_000,
  });
  assert.equal(r.code, 0, `test -t 1 is true on the device: ${r.stderr}`);
  assert.match(r.stdout, /to-err\r\n/);
  assert.equal(r.stderr, '');
  assert.equal(relay.streams.at(-1)?.query.tty, '1');
});

test('refusals print the server’s message and code and exit 1', { timeout: TEST_TIMEOUT_MS }, async () => {
  let r = await flotilla(config, ['ssh', 'locked', '--', 'true'], { timeoutMs: 20_000 });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'error: observers cannot open shells or tunnels (FORBIDDEN)\n');
  assert.equal(r.stdout, '');
  r = await flotilla(config, ['ssh', 'nope', '--', 'true'], { timeoutMs: 20_000 });
  assert.equal(r.stderr, 'error: no device "nope" (DEVICE_NOT_FOUND)\n');
  assert.equal(r.code, 1);
  // The device's own refusal, sent as `error` on the stream.
  r = await flotilla(config, ['ssh', 'probe-1', 'nosuch', '--', 'true'], { timeoutMs: 20_000 });
  assert.equal(r.stderr, 'error: no service nosuch on the device (SERVICE_NOT_FOUND)\n');
  assert.equal(r.code, 1);
  r = await flotilla(config, ['ssh', 'probe-1', 'Bad/Service', '--', 'true'], { timeoutMs: 20_000 });
  assert.match(r.stderr, /^error: invalid service "Bad\/Service": .+ \(VALIDATION_FAILED\)\n$/);
  // A wrong token is the server's 401.
  const other = join(dir.path, 'other');
  await writeCredentials({ url: relay.url, token: 'wrong' }, { FLOTILLA_CONFIG_DIR: other });
  r = await flotilla(other, ['ssh', 'probe-1', '--', 'true'], { timeoutMs: 20_000 });
  assert.match(r.stderr, /^error: .+ \(UNAUTHENTICATED\)\n$/);
  // Nothing listening.
  const gone = join(dir.path, 'gone');
  await writeCredentials({ url: 'http://127.0.0.1:9', token: 't' }, { FLOTILLA_CONFIG_DIR: gone });
  r = await flotilla(gone, ['ssh', 'probe-1', '--', 'true'], { timeoutMs: 20_000 });
  assert.match(r.stderr, /^error: cannot reach http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED.* \(NETWORK_ERROR\)\n$/);
  assert.equal(r.code, 1);
});

test('a connection cut before the exit status is a clear error, exit 1', { timeout: TEST_TIMEOUT_MS }, async () => {
  const seen = relay.streams.length;
  const run = flotilla(config, ['ssh', 'probe-1', '--', 'echo started; sleep 30'], { timeoutMs: 20_000 });
  const stream = await waitFor('the stream', () => relay.streams[seen], { timeoutMs: 10_000 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  stream.drop();
  const r = await run;
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'started\n');
  assert.match(
    r.stderr,
    /^error: the connection to http:\/\/127\.0\.0\.1:\d+ closed before the command ended.* \(NETWORK_ERROR\)\n$/,
  );
});

test('interactive under a terminal: raw keystrokes, echo, resize, Ctrl-C to the device, exit status', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const seen = relay.streams.length;
  const cli = spawnCliInPty(['ssh', 'probe-1'], { configDir: config, cols: 91, rows: 27 });
  try {
    await cli.waitForOutput(/\$ $/m);
    const stream = relay.streams[seen];
    assert.ok(stream);
    assert.equal(stream.query.tty, '1');
    assert.equal(stream.query.cols, '91', 'the initial size comes from the local terminal');
    assert.equal(stream.query.rows, '27');

    cli.write('echo hel""lo-$((6*7))\r');
    await cli.waitForOutput(/hello-42/);
    await cli.waitForOutput(/\$ $/m);

    cli.resize(120, 40);
    await waitFor('the resize to reach the device', () =>
      stream.controls.some((c) => c.type === 'resize' && c.cols === 120 && c.rows === 40),
    );
    cli.write('stty size\r');
    await cli.waitForOutput(/40 120/);
    await cli.waitForOutput(/\$ $/m);

    // Raw mode: Ctrl-C is a byte for the device's terminal (it interrupts sleep there), not a signal for the CLI.
    cli.write('sleep 30\r');
    await new Promise((resolve) => setTimeout(resolve, 300));
    cli.write('\x03');
    await waitFor('0x03 at the device', () => stream.stdin().includes(0x03));
    cli.write('echo still-$((1+1))\r');
    await cli.waitForOutput(/still-2/, 5_000);

    cli.write('exit 7\r');
    const { exitCode } = await cli.exit;
    assert.equal(exitCode, 7);
  } finally {
    cli.kill();
  }
});

test('the local terminal is raw during the session and cooked after it, however it ends', {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  // A shell runs the CLI, then prints its exit status and the terminal's modes as the CLI left them.
  // Node also resets the terminal modes when it exits, so "after" checks what the user gets, not which code did it.
  const script = `"${process.execPath}" "${CLI_MAIN}" ssh probe-1; echo status=$?; stty -a`;
  const modesOf = async (device: string) => (await run('stty', ['-F', device, '-a'])).stdout;
  for (const ending of ['drop', 'SIGTERM'] as const) {
    const seen = relay.streams.length;
    const sh = spawnInPty('sh', ['-c', script], { configDir: config });
    try {
      await sh.waitForOutput(/\$ $/m);
      const stream = relay.streams[seen];
      assert.ok(stream);
      const during = await modesOf(sh.device);
      assert.match(during, /(^|\s)-icanon(\s|$)/, 'raw: no line editing');
      assert.match(during, /(^|\s)-echo(\s|$)/, 'raw: the device echoes, not the local terminal');
      assert.match(during, /(^|\s)-isig(\s|$)/, 'raw: Ctrl-C is a byte, not a signal');
      assert.match(during, /(^|\s)-opost(\s|$)/, 'raw: the device’s output reaches the screen unchanged');
      if (ending === 'drop') stream.drop();
      else {
        const children = await readFile(`/proc/${sh.pid}/task/${sh.pid}/children`, 'utf8');
        const cli = Number(children.trim().split(/\s+/)[0]);
        assert.ok(cli > 0, 'the CLI runs under the shell');
        process.kill(cli, 'SIGTERM');
      }
      await sh.waitForOutput(ending === 'drop' ? /status=1\r?\n/ : /status=143\r?\n/);
      const after = (await sh.waitForOutput(/[\s\S]*icanon[\s\S]*/))[0];
      assert.match(after, /(^|\s)icanon(\s|$)/, 'canonical mode is back');
      assert.match(after, /(^|\s)echo(\s|$)/, 'echo is back');
      assert.match(after, /(^|\s)isig(\s|$)/, 'Ctrl-C is a signal again');
      assert.match(after, /(^|\s)opost(\s|$)/, 'output processing is back');
      if (ending === 'drop') assert.match(sh.output(), /closed before the command ended.*\(NETWORK_ERROR\)/);
      await sh.exit;
    } finally {
      sh.kill();
    }
  }
});
