import { formatDurationSeconds, type Device } from '@flotilla/protocol';

/** How long ago `iso` was, in the largest whole unit (`just now`, `5 min ago`, `3 h ago`, `2 d ago`). */
export function timeAgo(iso: string | null, now: number): string {
  if (iso === null) return 'never';
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return 'unknown';
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 45) return 'just now';
  if (seconds < 3600) return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  if (seconds < 86_400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} d ago`;
}

/** Megabytes as the agent reports them, in MB below a gigabyte and GB above. */
export function formatMb(mb: number): string {
  return mb < 1024 ? `${Math.round(mb)} MB` : `${(mb / 1024).toFixed(1)} GB`;
}

/** `used / total (n %)`, or what is known of it. */
export function formatUsage(used: number | null, total: number | null): string | null {
  if (used === null) return null;
  if (total === null || total <= 0) return formatMb(used);
  return `${formatMb(used)} / ${formatMb(total)} (${Math.round((used / total) * 100)} %)`;
}

/** The first 7 characters of a commit or UUID, as every Flotilla tool shows them. */
export function short(hash: string | null): string {
  return hash === null ? '—' : hash.slice(0, 7);
}

/**
 * A device's maintenance window in words: the window and whose it is, and, while an update waits for it, when it
 * opens; without one, that updates apply at once.
 */
export function describeUpdateWindow(device: Pick<Device, 'updateWindow' | 'updateWindowOpensAt'>): string {
  const window = device.updateWindow;
  if (!window) return 'none: updates apply at once';
  const whose = window.source === 'device' ? 'its own' : 'the fleet’s';
  const text = `${window.cron} (${window.timezone}), open ${formatDurationSeconds(window.durationSeconds)}; ${whose}`;
  return device.updateWindowOpensAt ? `${text}. An update waits for it; it opens ${device.updateWindowOpensAt}` : text;
}
