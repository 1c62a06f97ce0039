import type { Command } from 'commander';
import { USER_ROUTES, deviceRefSchema, formatBytes, remoteSessionsQuerySchema } from '@flotilla/protocol';
import type { RemoteSession } from '@flotilla/protocol';
import { emit, formatTable } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

/** `45s`, `3m 07s`, `2h 05m`, `3d 4h`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : date
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, '');
}

export function sessionsTable(sessions: readonly RemoteSession[]): string {
  return formatTable(
    ['kind', 'device', 'user', 'target', 'from', 'started', 'duration', 'in', 'out', 'end'],
    sessions.map((s) => [
      s.kind,
      s.device.name || s.device.uuid.slice(0, 7),
      s.user?.username ?? '(public)',
      s.target,
      s.remoteAddress,
      formatTime(s.startedAt),
      s.endedAt === null ? 'open' : formatDuration(Date.parse(s.endedAt) - Date.parse(s.startedAt)),
      formatBytes(s.bytesIn),
      formatBytes(s.bytesOut),
      s.endReason,
    ]),
  );
}

export function registerSessionsCommand(program: Command): void {
  leaf(program, 'sessions', 'the audit log of shells, tunnels and public-URL connections, newest first')
    .option('--device <device>', 'only this device’s sessions')
    .option('--limit <n>', 'at most this many (1-1000)', '100')
    .action(async (opts: { device?: string; limit: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const device = opts.device === undefined ? undefined : checkArg(deviceRefSchema, opts.device, '--device');
        const limit = checkArg(remoteSessionsQuerySchema.shape.limit, opts.limit, '--limit');
        const { items } = await (await ctx.client()).call(USER_ROUTES.listRemoteSessions, { query: { device, limit } });
        emit(ctx.output, items, () => sessionsTable(items));
      }),
    );
}
