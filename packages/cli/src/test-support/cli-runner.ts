import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point; tests run the real binary, not the modules. */
export const CLI_MAIN = fileURLToPath(new URL('../main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `flotilla <args>` with its own config folder (and `input` as its whole stdin); never throws on a non-zero exit. */
export function flotilla(
  configDir: string,
  args: string[],
  options: { cwd?: string; timeoutMs?: number; input?: string | Buffer; env?: Record<string, string> } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI_MAIN, ...args],
      {
        cwd: options.cwd,
        env: { ...process.env, ...options.env, FLOTILLA_CONFIG_DIR: configDir },
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    // Without `input`, stdin stays an open pipe nobody writes to, as before.
    // A command may exit without reading all of it (EPIPE then): that is its business, not a runner failure.
    child.stdin?.on('error', () => undefined);
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a command with --json and parses stdout, failing loudly with the stderr when it did not succeed. */
export async function flotillaJson<T>(configDir: string, args: string[], options: { cwd?: string } = {}): Promise<T> {
  const result = await flotilla(configDir, [...args, '--json'], options);
  if (result.code !== 0) {
    // What the config folder held when the command failed: a NOT_LOGGED_IN right after a successful login was seen
    // once in CI and never explained, so a failure says what was there.
    const held = await readdir(configDir).then(
      (names) => names.join(', ') || 'nothing',
      (error: NodeJS.ErrnoException) => error.code,
    );
    throw new Error(`flotilla ${args.join(' ')} exited ${result.code}: ${result.stderr} (config folder held: ${held})`);
  }
  return JSON.parse(result.stdout) as T;
}
