import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeltaStore } from './delta-store.js';

export interface DeltaGcResult {
  deltaPairsRemoved: number;
  deltasRemoved: number;
  deltaBytesFreed: number;
}

/**
 * Removes deltas of images the registry no longer keeps: a pair goes once either of its blobs is gone (`blobGone`:
 * an app pair names two manifests, an OS pair two slot images, whose blobs go once no OS release's manifest links
 * them: its release was deleted and the registry's collection removed it), and a delta file goes once no pair names it and it is older than `graceMs` (a computation
 * renames its file in just before it writes its pair). Run by the registry's garbage collection, after its own
 * pass, so `manifestGone` sees what that pass removed.
 */
export async function collectDeltaGarbage(
  store: DeltaStore,
  blobGone: (hex: string) => Promise<boolean>,
  options: { graceMs: number; now: number; dryRun?: boolean | undefined },
): Promise<DeltaGcResult> {
  const result: DeltaGcResult = { deltaPairsRemoved: 0, deltasRemoved: 0, deltaBytesFreed: 0 };
  const named = new Set<string>();
  for (const dir of [store.pairsDir, store.osPairsDir]) {
    for (const name of await store.pairNames(dir)) {
      const [fromHex = '', toHex = ''] = name.slice(0, -'.json'.length).split('-');
      if ((await blobGone(fromHex)) || (await blobGone(toHex))) {
        if (!options.dryRun) await rm(join(dir, name), { force: true });
        result.deltaPairsRemoved += 1;
        continue;
      }
      const pair =
        dir === store.pairsDir ? await store.readPair(fromHex, toHex) : await store.readOsPair(fromHex, toHex);
      // An unreadable pair may name any delta: then no delta file is judged this time.
      if (!pair) return result;
      if (pair.ok) named.add(pair.digest.slice('sha256:'.length));
    }
  }
  const root = join(store.root, 'sha256');
  for (const prefix of await readdir(root).catch(() => [] as string[])) {
    for (const hex of await readdir(join(root, prefix)).catch(() => [] as string[])) {
      if (named.has(hex)) continue;
      const info = await stat(join(root, prefix, hex)).catch(() => undefined);
      if (!info || options.now - info.mtimeMs < options.graceMs) continue;
      if (!options.dryRun) await rm(join(root, prefix, hex), { force: true });
      result.deltasRemoved += 1;
      result.deltaBytesFreed += info.size;
    }
  }
  return result;
}
