import type { LogEntry } from '@flotilla/protocol';
import { type AnsiSegment, parseAnsi, stripAnsi } from './ansi.js';

/** A log entry ready to show: its escape codes parsed once, its plain text kept for search. */
export interface LogLine {
  /** Position in the stream, unique for the page's lifetime: the React key. */
  readonly seq: number;
  readonly entry: LogEntry;
  readonly text: string;
  readonly segments: readonly AnsiSegment[];
}

export interface LogFilter {
  /** Service name; '' for every line, SYSTEM_SOURCE for the agent's own lines (they name no service). */
  readonly service: string;
  readonly search: string;
}

export const SYSTEM_SOURCE = '(system)';

export function toLogLine(seq: number, entry: LogEntry): LogLine {
  return { seq, entry, text: stripAnsi(entry.message), segments: parseAnsi(entry.message) };
}

/**
 * The last `max` lines of `lines` followed by `added`.
 * INVARIANT: a followed stream never holds more than `max` lines, however long the page stays open.
 */
export function appendBounded<T>(lines: readonly T[], added: readonly T[], max: number): T[] {
  if (added.length >= max) return added.slice(added.length - max);
  const keep = Math.max(0, lines.length + added.length - max);
  return [...lines.slice(keep), ...added];
}

/** Lines matching the service and a case-insensitive substring of the text without escape codes. */
export function filterLines(lines: readonly LogLine[], filter: LogFilter): LogLine[] {
  const needle = filter.search.trim().toLowerCase();
  return lines.filter((line) => {
    if (filter.service !== '') {
      const source = line.entry.serviceName ?? SYSTEM_SOURCE;
      if (source !== filter.service) return false;
    }
    return needle === '' || line.text.toLowerCase().includes(needle);
  });
}

/** The lines as a text file to download: ISO time, source, message without escape codes. */
export function linesAsText(lines: readonly LogLine[]): string {
  return lines
    .map(
      (line) =>
        `${new Date(line.entry.timestamp).toISOString()} [${line.entry.serviceName ?? SYSTEM_SOURCE}] ${line.text}\n`,
    )
    .join('');
}
