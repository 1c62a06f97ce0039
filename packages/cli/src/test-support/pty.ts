import { spawn } from '@lydell/node-pty';
import { CLI_MAIN } from './cli-runner.js';

export interface PtyProcess {
  /** Types into the terminal (keystrokes: `\r` for Enter, `\x03` for Ctrl-C). */
  write(data: string): void;
  /**
   * Waits until the output not yet matched by an earlier wait matches `pattern`, and moves past that match, so
   * waiting for the same prompt twice waits for a second prompt. Throws with the output seen after `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resizes the terminal: the program gets SIGWINCH, as with a resized terminal window. */
  resize(cols: number, rows: number): void;
  /** Everything the program wrote to the terminal so far. */
  output(): string;
  /** How the program ended. */
  readonly exit: Promise<{ exitCode: number; signal?: number | undefined }>;
  kill(signal?: NodeJS.Signals): void;
  /** The process id of the program started in the terminal. */
  readonly pid: number;
  /** The terminal's device (`/dev/pts/N`), for `stty -F` from outside. */
  readonly device: string;
}

export interface PtyOptions {
  /** FLOTILLA_CONFIG_DIR for the run (credentials); absent: the environment's. */
  configDir?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  cols?: number;
  rows?: number;
}

/** Runs the built CLI (`flotilla <args>`) with a pseudo-terminal as its stdin, stdout and stderr. */
export function spawnCliInPty(args: readonly string[], options: PtyOptions = {}): PtyProcess {
  return spawnInPty(process.execPath, [CLI_MAIN, ...args], options);
}

/** Runs any program under a pseudo-terminal (the CLI, or another binary an end-to-end test drives). */
export function spawnInPty(file: string, args: readonly string[], options: PtyOptions = {}): PtyProcess {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, TERM: 'xterm-256color', ...options.env }))
    if (value !== undefined) env[key] = value;
  if (options.configDir !== undefined) env.FLOTILLA_CONFIG_DIR = options.configDir;
  const pty = spawn(file, [...args], {
    name: 'xterm-256color',
    cols: options.cols ?? 80,
    rows: options.rows ?? 24,
    cwd: options.cwd ?? process.cwd(),
    env,
  });
  let text = '';
  let cursor = 0;
  const waiters = new Set<() => void>();
  pty.onData((data) => {
    text += data;
    for (const wake of waiters) wake();
  });
  const exit = new Promise<{ exitCode: number; signal?: number | undefined }>((resolve) => {
    pty.onExit((event) => {
      for (const wake of waiters) wake();
      resolve(event);
    });
  });
  let exited = false;
  void exit.then(() => {
    exited = true;
  });

  return {
    write: (data) => pty.write(data),
    resize: (cols, rows) => pty.resize(cols, rows),
    output: () => text,
    exit,
    kill: (signal) => pty.kill(signal),
    pid: pty.pid,
    // node-pty's Unix terminal has it; its typings do not say so.
    device: (pty as unknown as { ptsName: string }).ptsName,
    waitForOutput(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text.slice(cursor).match(pattern);
          if (match) {
            done();
            cursor += (match.index ?? 0) + match[0].length;
            resolve(match);
          } else if (exited) {
            done();
            reject(new Error(`the program exited before printing ${pattern}; it printed ${JSON.stringify(text)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output: ${JSON.stringify(text)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}
