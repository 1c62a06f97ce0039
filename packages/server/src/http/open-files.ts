import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Files a server node keeps open besides its device connections: database, registry blobs, logs, user requests. */
export const RESERVED_FILES = 1_000;

export interface OpenFiles {
  soft: number;
  hard: number;
  /** Whether the soft limit was raised now. */
  raised: boolean;
  /** Why it could not be raised, when it could not. */
  problem?: string;
}

/** This process's open-file limits from /proc (Infinity for unlimited); undefined off Linux. */
export function openFileLimits(): { soft: number; hard: number } | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (!match) return undefined;
  const value = (s: string | undefined) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: value(match[1]), hard: value(match[2]) };
}

/**
 * Raises this process's soft open-file limit (RLIMIT_NOFILE) to its hard limit: each device connection is one open
 * socket, and the usual soft limit of 1,024 would cap a node near a thousand devices. Node has no setrlimit;
 * `prlimit --pid` (util-linux, on every mainstream Linux) sets it on a running process, so this works however the
 * server is started (systemd, a container, `node main.js`). Without prlimit the limit stays as the shell or the
 * unit set it (`ulimit -n`, `LimitNOFILE=`), and `problem` says so.
 */
export function raiseOpenFileLimit(): OpenFiles | undefined {
  const before = openFileLimits();
  if (!before) return undefined;
  if (before.soft >= before.hard) return { ...before, raised: false };
  const hard = Number.isFinite(before.hard) ? String(before.hard) : 'unlimited';
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { stdio: 'ignore' });
  } catch (error) {
    return { ...before, raised: false, problem: `prlimit failed: ${(error as Error).message}` };
  }
  const after = openFileLimits() ?? before;
  return { ...after, raised: after.soft > before.soft };
}

/** Roughly how many device connections a limit of `soft` open files leaves room for. */
export function connectionCapacity(soft: number): number {
  return Math.max(0, soft - RESERVED_FILES);
}
