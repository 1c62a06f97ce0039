import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Harness } from './fixtures.js';

/** The agent's command (the bundled build: `npm run build`, or `npm run bundle -w @flotilla/agent` after tsc). */
export const AGENT_BIN = fileURLToPath(new URL('../../../../bin/flotilla-agent', import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What the agent wrote to stderr so far (warnings and errors: it runs at log level warn). */
  stderr: () => string;
}

/**
 * The agent as a device runs it, in a process of its own on the harness's config, data folder and namespace (polling
 * every 300 ms, no local API), so a test can kill -9 it. `failpoint`: FLOTILLA_AGENT_FAILPOINT (executor.ts).
 */
export function spawnAgent(h: Harness, failpoint?: string): AgentProcess {
  const env = { ...process.env, FLOTILLA_AGENT_FAILPOINT: failpoint ?? '' };
  const child = spawn(
    AGENT_BIN,
    [
      '--config',
      h.configPath,
      '--data',
      h.dataDir,
      '--namespace',
      h.namespace,
      '--poll-interval',
      '300',
      '--log-level',
      'warn',
      '--api-port',
      '0',
    ],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      if (stderr && process.env.FLOTILLA_TEST_LOG) process.stderr.write(stderr);
      resolve({ code, signal });
    }),
  );
  return { child, exited, stderr: () => stderr };
}

/** Kills the process with `signal` and resolves once it has exited. */
export function exitOf(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  return exited;
}

/**
 * The agent's exit, which a test expects of it by itself (a failpoint reached): fails after `timeoutMs` with the end of
 * its stderr, so a failpoint that is never reached is a clear failure rather than a test hung until the runner's limit.
 */
export async function exitWithin(
  agent: AgentProcess,
  timeoutMs: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`the agent did not exit within ${timeoutMs} ms; its stderr ends:\n${agent.stderr().slice(-4000)}`),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([agent.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}
