import Table from 'cli-table3';
import pc from 'picocolors';
import { FlotillaError, isErrorCode } from '@flotilla/protocol';

/** Where a command writes. Injected so formatting is testable without a process. */
export interface Output {
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
}

export function stdOutput(json: boolean): Output {
  return { json, out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
}

export type Cell = string | number | boolean | null | undefined;

export function formatCell(value: Cell): string {
  if (value === null || value === undefined || value === '') return '-';
  return String(value);
}

/** A borderless table; headers upper-cased as in most CLIs. Empty lists say so instead of printing a bare header. */
export function formatTable(headers: string[], rows: Cell[][]): string {
  if (rows.length === 0) return 'nothing to show\n';
  const table = new Table({
    head: headers.map((h) => h.toUpperCase()),
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const row of rows) table.push(row.map(formatCell));
  return `${table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')}\n`;
}

/** `key: value` lines, keys padded to line up. */
export function formatDetails(pairs: Array<[string, Cell]>): string {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${formatCell(v)}\n`).join('');
}

/** Prints `data` as JSON with --json, else the human rendering. */
export function emit(output: Output, data: unknown, human: () => string): void {
  output.out(output.json ? `${JSON.stringify(data, null, 2)}\n` : human());
}

/** Progress lines go to stderr so `--json` stdout stays parseable. */
export function progress(output: Output, text: string): void {
  output.err(output.json ? `${text}\n` : `${pc.dim(text)}\n`);
}

/** `error: <message> (<CODE>)`; never a stack. Unknown errors are INTERNAL. */
export function formatError(error: unknown): { text: string; code: string } {
  if (error instanceof FlotillaError) return { text: `error: ${error.message} (${error.code})`, code: error.code };
  const code =
    typeof error === 'object' && error !== null && isErrorCode((error as { code?: unknown }).code)
      ? String((error as { code: unknown }).code)
      : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  return { text: `error: ${message} (${code})`, code };
}
