import { readFileSync } from 'node:fs';

/** Files a server node keeps open besides its device connections: database, registry blobs, logs, user requests. */
export const RESERVED_FILES = 1_000;

/**
 * This process's open-file limits (RLIMIT_NOFILE) from /proc; Infinity for unlimited, undefined off Linux.
 * Each device connection is one open socket. Node itself raises the soft limit to the hard one as it starts (its
 * platform setup calls setrlimit; http/open-files.test.ts checks it from a process started at 256), so the server
 * only reads and reports them: the hard limit is the system's (`LimitNOFILE=` in a systemd unit, `--ulimit nofile=`
 * for a container).
 */
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

/** Roughly how many device connections a limit of `soft` open files leaves room for. */
export function connectionCapacity(soft: number): number {
  return Math.max(0, soft - RESERVED_FILES);
}

/** The line the server prints at start: its open-file limit and the device connections it leaves room for. */
export function describeOpenFiles(limits: { soft: number; hard: number }): string {
  const room = Number.isFinite(limits.soft) ? `room for about ${connectionCapacity(limits.soft)}` : 'no cap on';
  const below = limits.soft < limits.hard ? ` (below the hard limit ${limits.hard}: raise it with ulimit -n)` : '';
  return `open-file limit ${limits.soft}${below}: ${room} device connections`;
}
