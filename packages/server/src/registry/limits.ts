import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { RegistryError } from './errors.js';
import type { RegistryStorage } from './storage.js';

/** Upload size limit and storage quota; 0 means no limit. */
export interface RegistryLimits {
  /** Largest blob one upload may grow to, in bytes. */
  maxUploadBytes: number;
  /** Bytes the repositories of one quota group (an organization's fleets) may hold together. */
  quotaBytes: number;
}

export const DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024 * 1024;

/** 413 in the OCI error shape; the code says which limit was met. */
export function tooLarge(code: 'SIZE_INVALID' | 'DENIED', message: string): RegistryError {
  return new RegistryError(code, message, { status: 413, headers: { connection: 'close' } });
}

/** Passes at most `maxBytes` through; past that it fails with `error`, so the writer stops and nothing more lands. */
export function byteLimit(maxBytes: number, error: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > maxBytes) callback(error());
      else callback(null, chunk);
    },
  });
}

/**
 * Bytes held by the repositories under the key prefixes: the size of every distinct blob (layer, config or
 * manifest) any of them links, each counted once however many repositories share it.
 */
export async function usageOf(
  storage: RegistryStorage,
  prefixes: readonly string[],
): Promise<{ bytes: number; blobs: Set<string> }> {
  const hexes = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      if (entry.name === '_blobs' || entry.name === '_manifests') {
        for (const name of await readdir(join(dir, entry.name)).catch(() => [] as string[]))
          if (/^[0-9a-f]{64}$/.test(name)) hexes.add(name);
      } else if (!entry.name.startsWith('_')) await walk(join(dir, entry.name));
    }
  };
  for (const prefix of prefixes) await walk(join(storage.repositoriesDir, prefix));
  let bytes = 0;
  for (const hex of hexes) bytes += (await storage.blobSize(hex)) ?? 0;
  return { bytes, blobs: hexes };
}
