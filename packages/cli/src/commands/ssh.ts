import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { FlotillaError, deviceRefSchema, serviceNameSchema } from '@flotilla/protocol';
import { openShell } from '../remote/shell-session.js';
import type { StreamEndpoint } from '../remote/stream-socket.js';
import { checkArg, runCommand } from './context.js';

export interface SshInvocation {
  device: string;
  service?: string | undefined;
  /** The words after `--` joined with spaces, as ssh does (the device's `sh -c` splits them again). */
  command?: string | undefined;
}

/** How many trailing words of `argv` came after the first `--` (commander drops the `--` itself). */
export function wordsAfterDash(argv: readonly string[]): number | undefined {
  const dash = argv.indexOf('--');
  return dash === -1 ? undefined : argv.length - dash - 1;
}

/** `<device> [service] [-- <command...>]` from commander's operands and how many of them followed `--`. */
export function sshInvocation(operands: readonly string[], afterDash: number | undefined): SshInvocation {
  const split = afterDash === undefined ? operands.length : operands.length - afterDash;
  const before = operands.slice(0, split);
  const after = afterDash === undefined ? undefined : operands.slice(split);
  if (before.length === 0) throw new FlotillaError('VALIDATION_FAILED', 'give a device: flotilla ssh <device>');
  if (before.length > 2)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `unexpected argument ${JSON.stringify(before[2])}: put the command after --, e.g. flotilla ssh <device> -- ls -l`,
    );
  if (after !== undefined && after.length === 0)
    throw new FlotillaError('VALIDATION_FAILED', 'give a command after --, e.g. flotilla ssh <device> -- uptime');
  return {
    device: checkArg(deviceRefSchema, before[0], 'device'),
    service: before[1] === undefined ? undefined : checkArg(serviceNameSchema, before[1], 'service'),
    command: after?.join(' '),
  };
}

export interface ShellMode {
  /** Ask the device for a pseudo-terminal. */
  tty: boolean;
  /** Put the local terminal in raw mode (keystrokes, Ctrl-C included, go to the device as they are). */
  raw: boolean;
  /** Forward stdin; false: the command gets an empty stdin at once. */
  readStdin: boolean;
}

/**
 * An interactive shell gets a terminal when both ends are terminals; a command only with -t (so its stdout and
 * stderr stay apart in pipes and scripts). A command without a terminal does not read a terminal stdin: it would
 * wait for a Ctrl-D nobody means to type (`ssh -n`).
 */
export function shellMode(
  invocation: SshInvocation,
  forceTty: boolean,
  stdinIsTty: boolean,
  stdoutIsTty: boolean,
): ShellMode {
  const tty = forceTty || (invocation.command === undefined && stdinIsTty && stdoutIsTty);
  return {
    tty,
    raw: tty && stdinIsTty,
    readStdin: !(invocation.command !== undefined && !tty && stdinIsTty),
  };
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function registerSshCommand(program: Command): void {
  program
    .command('ssh')
    .description('open a shell on a device (or in a service’s container), or run one command after --')
    .usage('[options] <device> [service] [-- <command...>]')
    .argument('<device>', 'name, UUID or 7+ char UUID prefix')
    .argument('[service...]', 'a service of the device’s app (then -- and a command)')
    .option('-t, --tty', 'give the command a pseudo-terminal (stdout and stderr are then merged)')
    .action(async (device: string, rest: string[], opts: { tty?: boolean }) =>
      runCommand({}, async (ctx) => {
        const invocation = sshInvocation([device, ...rest], wordsAfterDash(process.argv));
        const { url, token, ca } = await ctx.credentials();
        const code = await runShell({ apiUrl: url, token, ca }, invocation, opts.tty === true);
        await Promise.all([flush(process.stdout), flush(process.stderr)]);
        process.exitCode = code;
      }),
    );
}

/** Runs the session on this process's terminal; returns the exit status the process should end with. */
async function runShell(endpoint: StreamEndpoint, invocation: SshInvocation, forceTty: boolean): Promise<number> {
  const { stdin, stdout } = process;
  const mode = shellMode(invocation, forceTty, stdin.isTTY === true, stdout.isTTY === true);
  const size = mode.tty && stdout.isTTY ? { cols: stdout.columns, rows: stdout.rows } : undefined;
  const session = await openShell(
    { ...endpoint, ...invocation, tty: mode.tty, size },
    { stdin: mode.readStdin ? stdin : undefined, stdout, stderr: process.stderr },
  );

  // Raw mode only once the server accepted the stream: a refused one leaves the terminal untouched.
  // INVARIANT: every way out (exit status, error, signal, a throw, process exit) restores the terminal.
  let raw = false;
  const restore = () => {
    if (raw && stdin.isTTY) stdin.setRawMode(false);
    raw = false;
  };
  if (mode.raw && stdin.isTTY) {
    stdin.setRawMode(true);
    raw = true;
    passOutputThrough();
  }
  process.once('exit', restore);

  let signalled: number | undefined;
  // Signals are handled here only in raw mode, to end the session cleanly and leave the terminal as it was.
  // WARNING: not otherwise. While a reader does not read our stdout, what the device sent waits here, and a handled
  // SIGTERM would end the session only to wait for ever on the final flush. SIGTERM keeps its default action: the
  // process dies (Node restores the terminal on the way), the server sees the connection go and ends the command.
  const handleSignals = mode.raw;
  const onSignal = (signal: NodeJS.Signals) => {
    signalled = constants.signals[signal];
    session.close();
  };
  const onResize = () => session.resize(stdout.columns, stdout.rows);
  // A reader that went away (`… | head -1`): end the session quietly, as ssh does when SIGPIPE kills it.
  const onOutputError = (error: NodeJS.ErrnoException) => {
    signalled ??= error.code === 'EPIPE' ? constants.signals.SIGPIPE : constants.signals.SIGTERM;
    session.close();
  };
  if (handleSignals) for (const signal of SIGNALS) process.on(signal, onSignal);
  if (mode.tty && stdout.isTTY) stdout.on('resize', onResize);
  stdout.on('error', onOutputError);
  process.stderr.on('error', onOutputError);
  try {
    const code = await session.exit;
    return code >= 0 && code <= 255 ? code : 255;
  } catch (error) {
    if (signalled !== undefined) return 128 + signalled;
    throw error;
  } finally {
    restore();
    process.off('exit', restore);
    for (const signal of SIGNALS) process.off(signal, onSignal);
    stdout.off('resize', onResize);
    // The output error listeners stay: the last flush may still meet a closed pipe, and an 'error' nobody
    // listens to would crash with a stack.
  }
}

/**
 * Turns off the local terminal's output processing (OPOST), as ssh's raw mode does: the device's terminal already
 * made the output what the screen must show. WARNING: Node's raw mode (libuv) leaves OPOST and ONLCR on, so each
 * "\n" from the device became "\r\n" here (the device's "\r\n" arrived as "\r\r\n"), and a full-screen program
 * that moves the cursor down with a bare line feed (its terminal raw on the device: tmux, vi) would land in column 0.
 * Node cannot clear the flag; `stty` run on the same terminal can. setRawMode(false), and Node when the process
 * dies of a signal, put back the modes from before raw mode, OPOST included. Without a working `stty` the output
 * stays as Node's raw mode leaves it.
 */
function passOutputThrough(): void {
  spawnSync('stty', ['-opost'], { stdio: ['inherit', 'ignore', 'ignore'], timeout: 2_000 });
}

/** Resolves once everything written to `stream` so far was handed to the OS (or the stream is gone). */
function flush(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    if ((stream as { destroyed?: boolean }).destroyed) return resolve();
    stream.write('', () => resolve());
  });
}
