import { readFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import dockerignoreModule from '@balena/dockerignore';
import { pack } from 'tar-fs';

// The package is CommonJS typed as an ES default export; under NodeNext the default import is module.exports.
const dockerignore = dockerignoreModule.default;

/** Patterns of the context's .dockerignore; the Dockerfile and .dockerignore are always sent, as docker does. */
export async function ignorePatterns(context: string): Promise<string[]> {
  try {
    return (await readFile(join(context, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  } catch {
    return [];
  }
}

export function ignoreFilter(context: string, patterns: string[], dockerfile: string): (path: string) => boolean {
  const matcher = dockerignore({ ignorecase: false }).add(patterns);
  const keep = new Set([dockerfile, '.dockerignore']);
  return (absolute: string) => {
    const rel = relative(context, absolute).split(sep).join('/');
    if (rel === '' || keep.has(rel)) return false;
    return matcher.ignores(rel);
  };
}

/** The build context as a tar stream, honouring .dockerignore. */
export async function contextTar(context: string, dockerfile: string): Promise<Readable> {
  const filter = ignoreFilter(context, await ignorePatterns(context), dockerfile);
  // tar-fs's Pack is a streamx Readable, which dockerode accepts like a Node stream.
  return pack(context, { ignore: filter }) as unknown as Readable;
}
