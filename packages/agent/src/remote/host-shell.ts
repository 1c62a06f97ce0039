import { spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { constants as os } from 'node:os';
import type { Writable } from 'node:stream';
import type { IPty } from '@lydell/node-pty';
import { FlotillaError, STREAM_CHANNEL, channelFrame, readChannelFrame } from '@flotilla/protocol';
import type { Sink } from './flow.js';
import { EOT, type ShellRequest } from './service-shell.js';
import type { StreamSocket } from './stream-socket.js';

/** A process that ignores the hangup is killed this long after its stream ended. */
const KILL_AFTER_MS = 5_000;

/** How a host shell is started: the command's words (`--host-shell`, split at spaces). */
export function hostShellWords(command: string): string[] {
  const words = command.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new FlotillaError('VALIDATION_FAILED', 'the host shell command is empty');
  return words;
}

/**
 * A shell (or one command) on the device's host, run by the agent itself: with a pseudo-terminal (node-pty) for
 * interactive sessions, with plain pipes (stdout and stderr apart) otherwise. Interactive shells are login shells
 * (`<shell> -l`), commands run as `<shell> -c <command>`.
 */
export async function serveHostShell(stream: StreamSocket, request: ShellRequest, shell: string[]): Promise<void> {
  const [file = '/bin/sh', ...words] = shell;
  const args = request.command === undefined ? [...words, '-l'] : [...words, '-c', request.command];
  if (request.tty) await servePty(stream, request, file, args);
  else servePipes(stream, file, args);
}

/**
 * The environment of a host shell: what a login needs, not the agent's own (which may hold an operator's settings
 * or secrets the shell's user has no business with); the login shell's profile adds the rest.
 */
function loginEnv(tty: boolean): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/',
  };
  for (const name of ['USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ'] as const) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  if (tty) env.TERM = 'xterm-256color';
  return env;
}

async function servePty(stream: StreamSocket, request: ShellRequest, file: string, args: string[]): Promise<void> {
  let pty: typeof import('@lydell/node-pty');
  try {
    // Loaded on the first host terminal only: a native addon most devices never need in memory.
    pty = await import('@lydell/node-pty');
  } catch (error) {
    throw new FlotillaError(
      'UNAVAILABLE',
      `no pseudo-terminal support on this device (${(error as Error).message.split('\n')[0]}); use a shell without a TTY`,
    );
  }
  const env = loginEnv(true);
  const term = pty.spawn(file, args, {
    name: 'xterm-256color',
    cols: request.cols ?? 80,
    rows: request.rows ?? 24,
    cwd: env.HOME,
    env,
    encoding: null, // raw bytes: a character cut between two reads stays whole for the user's terminal
  });
  const slave = holdSlave(term);
  let exited = false;
  stream.onEnd(() =>
    hangUp(
      () => exited,
      (signal) => term.kill(signal),
    ),
  );
  // With encoding null node-pty hands over Buffers; its typings say string.
  term.onData((data) => stream.flow.send(channelFrame(STREAM_CHANNEL.stdout, data as unknown as Buffer)));
  stream.flow.source(term);
  term.onExit(({ exitCode, signal }) => {
    exited = true;
    if (slave !== undefined) closeSync(slave);
    stream.control({ type: 'exit', code: signal ? 128 + signal : exitCode });
    stream.close();
  });
  const input = ptySink(term);
  stream.listen({
    data: (frame) => {
      const piece = readChannelFrame(frame);
      if (piece?.channel === STREAM_CHANNEL.stdin) stream.flow.deliver(input, piece.data);
    },
    control: (message) => {
      if (message.type === 'eof') input.write(EOT);
      else if (message.type === 'resize' && !exited) term.resize(message.cols, message.rows);
    },
  });
  stream.control({ type: 'ready' });
}

/**
 * Opens the terminal's slave side in the agent too, until the process has exited. WARNING: without it, Linux may
 * answer the master's next read with EIO as soon as the process closes the slave, before the last bytes it wrote
 * were read, and node-pty then drops them (node-pty issues 72 and 726; here 9 of 24 runs of a command writing 8 MiB
 * lost their last KiB, none of 24 with the slave held). Held open, the slave never hangs up, so reads return
 * everything; node-pty ends the terminal 200 ms after the process exited instead, ample for a reader that is not held
 * back. A command that exits while its output is paused (the user far behind) may still lose what the pty and
 * node-pty held unread: commands that must deliver every byte run without a TTY. `ptsName` is node-pty's, untyped.
 */
function holdSlave(term: IPty): number | undefined {
  const name = (term as unknown as { ptsName?: string }).ptsName;
  if (!name) return undefined;
  try {
    return openSync(name, constants.O_RDWR | constants.O_NOCTTY);
  } catch {
    return undefined; // without it, the rare loss described above
  }
}

/**
 * The pty as a sink for the user's keystrokes (or a paste). WARNING: node-pty's write() does not say when its
 * buffer is full; its `_socket` (node-pty 1.x: the net.Socket on the pty's master the writes go to) does, and is read
 * for that only. Without it, writes are not held back: typed input is small, a paste is bounded by the WebSocket
 * frame limit.
 */
function ptySink(term: IPty): Sink {
  const socket = (term as unknown as { _socket?: Writable })._socket;
  return {
    write: (data) => {
      // node-pty passes a Buffer through to its socket unchanged; its typings say string.
      term.write(data as unknown as string);
      return socket?.writableNeedDrain !== true;
    },
    once: (event, listener) => socket?.once(event, listener),
  };
}

function servePipes(stream: StreamSocket, file: string, args: string[]): void {
  const env = loginEnv(false);
  // Its own process group, so a hangup reaches the command's children too, as a terminal's would.
  const child = spawn(file, args, { cwd: env.HOME, env, stdio: 'pipe', detached: true });
  let exited = false;
  stream.onEnd(() =>
    hangUp(
      () => exited,
      (signal) => child.pid !== undefined && process.kill(-child.pid, signal),
    ),
  );
  child.once('error', (error) => {
    exited = true;
    stream.fail(new FlotillaError('INTERNAL', `cannot start ${file}: ${error.message}`));
  });
  child.stdin.on('error', () => undefined); // EPIPE when the command stops reading: its exit says the rest
  child.stdout.on('data', (data: Buffer) => stream.flow.send(channelFrame(STREAM_CHANNEL.stdout, data)));
  child.stderr.on('data', (data: Buffer) => stream.flow.send(channelFrame(STREAM_CHANNEL.stderr, data)));
  stream.flow.source(child.stdout);
  stream.flow.source(child.stderr);
  // 'close' comes after the output streams ended, so every byte was sent before the exit status.
  child.once('close', (code, signal) => {
    exited = true;
    stream.control({ type: 'exit', code: code ?? 128 + (signal ? os.signals[signal] : 0) });
    stream.close();
  });
  child.once('spawn', () => {
    stream.listen({
      data: (frame) => {
        const piece = readChannelFrame(frame);
        if (piece?.channel === STREAM_CHANNEL.stdin) stream.flow.deliver(child.stdin, piece.data);
      },
      control: (message) => {
        if (message.type === 'eof') child.stdin.end();
      },
    });
    stream.control({ type: 'ready' });
  });
}

/** The user is gone: SIGHUP, as a closed terminal sends, then SIGKILL for a process that outlives it. */
function hangUp(exited: () => boolean, kill: (signal: NodeJS.Signals) => unknown): void {
  const send = (signal: NodeJS.Signals): void => {
    if (exited()) return;
    try {
      kill(signal);
    } catch {
      // already gone
    }
  };
  send('SIGHUP');
  setTimeout(() => send('SIGKILL'), KILL_AFTER_MS).unref();
}
