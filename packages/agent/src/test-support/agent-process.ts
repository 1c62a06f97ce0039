import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Harness } from './fixtures.js';

/** The agent's command (the bundled build: `npm run build`, or `npm run bundle -w @flotilla/agent` after tsc). */
export const AGENT_BIN = fileURLToPath(new URL('../../../../bin/flotilla-agent', import.meta.url));

export interface AgentProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
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
  return { child, exited };
}

/** Kills the process with `signal` and resolves once it has exited. */
export function exitOf(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  return exited;
}
