import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AptSource {
  uri: string;
  suite: string;
}

/**
 * The Debian mirror this machine is configured with, read from apt's sources (deb822 `.sources` files and the
 * one-line `sources.list` format). WARNING: never hard-code a mirror host; machines differ.
 */
export async function debianMirror(suite = 'bookworm', aptDir = '/etc/apt'): Promise<AptSource> {
  const sources: AptSource[] = [];
  const files: string[] = [join(aptDir, 'sources.list')];
  try {
    for (const name of (await readdir(join(aptDir, 'sources.list.d'))).sort())
      files.push(join(aptDir, 'sources.list.d', name));
  } catch {
    // no sources.list.d
  }
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    sources.push(...(file.endsWith('.sources') ? parseDeb822(text) : parseOneLine(text)));
  }
  const match = sources.find((source) => source.suite === suite && !source.uri.includes('security'));
  if (!match) throw new Error(`no apt source for suite "${suite}" in ${aptDir}; cannot debootstrap`);
  return match;
}

export function parseDeb822(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line.trim());
      if (m && !line.trim().startsWith('#')) fields.set(m[1]!.toLowerCase(), m[2]!);
    }
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    if ((fields.get('enabled') ?? 'yes') === 'no') continue;
    for (const uri of (fields.get('uris') ?? '').split(/\s+/).filter(Boolean)) {
      for (const suite of (fields.get('suites') ?? '').split(/\s+/).filter(Boolean)) out.push({ uri, suite });
    }
  }
  return out;
}

export function parseOneLine(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (m) out.push({ uri: m[1]!, suite: m[2]! });
  }
  return out;
}
