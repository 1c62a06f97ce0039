import { readFileSync } from 'node:fs';

/**
 * The listen backlog the server asks for: connections the kernel completes and holds until the server accepts them.
 * Node's default (511) is far too short for a node that takes over another's devices at once: 9,500 devices
 * redialling within a second overflowed it (`nstat` TcpExtListenOverflows in the hundreds of thousands), their
 * SYNs were dropped and retried 1, 3, 7 s later, and most handshakes outlived the agent's 15 s limit while the
 * node sat at 17 % of a core. The kernel caps it at net.core.somaxconn.
 */
export const LISTEN_BACKLOG = 65_535;

/** net.core.somaxconn, the kernel's cap on every listen backlog; undefined off Linux. */
export function somaxconn(): number | undefined {
  try {
    const value = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim());
    return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The start line's part on the accept queue: what the server gets, and how to get more when it is short. */
export function describeAcceptQueue(cap: number): string {
  const queue = Math.min(cap, LISTEN_BACKLOG);
  const advice =
    queue < 4096 ? ` (raise net.core.somaxconn for reconnect storms: sysctl -w net.core.somaxconn=4096)` : '';
  return `accept queue ${queue} connections${advice}`;
}
