// Child processes of a bench: started from bin/, their output prefixed on stderr, all stopped on the way out.
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

const root = new URL('../..', import.meta.url).pathname;
const running = new Set();

/**
 * Starts `bin/<name> ...args`. Each output line goes to `onLine` first; unless it returns 'consumed' the line is
 * copied to stderr as `[name] line`. The returned child has `exited`, a promise of its exit code or signal.
 * `env`, if given, is laid over the bench's environment (a variable set to undefined is left out).
 */
export function launch(name, args, onLine = () => undefined, { env } = {}) {
  const child = spawn(join(root, 'bin', name), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env && { ...process.env, ...env },
  });
  running.add(child);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  child.exited.then(() => running.delete(child));
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      if (onLine(line) !== 'consumed') process.stderr.write(`[${name}] ${line}\n`);
    });
  }
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the child is gone. */
export async function stop(child, graceMs = 10_000) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const outcome = await Promise.race([child.exited, sleep(graceMs, 'timeout')]);
  if (outcome === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
  }
}

/** Stops every child still running: the bench's `finally` calls it whatever happened before. */
export async function stopAll() {
  await Promise.all([...running].map((child) => stop(child)));
}

/** Throws if the child has already exited: waits poll this so a crashed program fails the bench at once. */
export function assertAlive(child, name) {
  if (child.exitCode !== null || child.signalCode !== null)
    throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}); see its output above`);
}

/**
 * The measured pid must be node itself. bin/* are bash scripts that `exec` node, so the spawned pid becomes node's;
 * if a wrapper ever stops exec'ing, we would be measuring a 4 MB bash instead, so check rather than assume.
 */
export function assertNodeProcess(pid) {
  const exe = basename(readlinkSync(`/proc/${pid}/exe`));
  if (!exe.startsWith('node'))
    throw new Error(`pid ${pid} runs ${exe}, not node: does the bin/ wrapper still exec node?`);
  let children = '';
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  } catch {
    // kernel without CONFIG_PROC_CHILDREN: nothing to check
  }
  if (children !== '')
    throw new Error(`pid ${pid} has child processes (${children}); their memory would not be counted`);
  return exe;
}

/** Polls `check` until it returns something other than undefined/false; `alive()` runs first and may throw. */
export async function waitUntil(
  description,
  check,
  { timeoutMs = 60_000, intervalMs = 250, alive = () => undefined } = {},
) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    alive();
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting for ${description}${lastError ? `: ${lastError.message}` : ''}`,
      );
    await sleep(intervalMs);
  }
}

/**
 * Makes `work` (the bench's cleanup: stop children, remove what it created; resolves to the failures it could not
 * fix) safe to call from both the bench's `finally` and Ctrl-C: it runs once, its failures are reported, and SIGINT
 * exits 130 after it.
 */
export function cleanupOnce(work, report) {
  let cleaning;
  const cleanup = () => {
    cleaning ??= (async () => {
      for (const failure of await work()) report(`cleanup: ${failure}`);
    })();
    return cleaning;
  };
  process.on('SIGINT', () => {
    report('interrupted; cleaning up');
    void cleanup().finally(() => process.exit(130));
  });
  return cleanup;
}
