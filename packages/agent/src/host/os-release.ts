import { readFile } from 'node:fs/promises';
import { release, type } from 'node:os';

/** The host OS as the device reports it (`os_version`) and as OS updates compare against. */
export interface OsRelease {
  /** PRETTY_NAME, e.g. "Debian GNU/Linux 12 (bookworm)" or "balenaOS 6.1.0"; the kernel when there is no file. */
  name: string;
  /** VERSION_ID: what an OS release's version is compared with (undefined when the file says none). */
  version: string | undefined;
}

/** Pure: the KEY=value lines of an os-release file (values unquoted, shell escapes undone). */
export function parseOsRelease(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!match) continue;
    let value = match[2]!;
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2)
      value = value.slice(1, -1).replace(/\\(["'$`\\])/g, '$1');
    fields.set(match[1]!, value);
  }
  return fields;
}

/** Reads os-release(5) (`/etc/os-release` on the host the agent runs on); a missing or unreadable file is no error. */
export async function readOsRelease(file = '/etc/os-release'): Promise<OsRelease> {
  const fields = await readFile(file, 'utf8').then(parseOsRelease, () => new Map<string, string>());
  const named = fields.get('PRETTY_NAME') ?? [fields.get('NAME'), fields.get('VERSION')].filter(Boolean).join(' ');
  return { name: named || `${type()} ${release()}`, version: fields.get('VERSION_ID') };
}
