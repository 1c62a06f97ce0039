import { readFile, readdir, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Db } from '../db/database.js';
import { type DeltaGcResult, collectDeltaGarbage } from '../deltas/delta-gc.js';
import { DeltaStore } from '../deltas/delta-store.js';
import type { RegistryStorage } from './storage.js';

/** A manifest some release needs: repository name and sha256 hex. */
export interface RegistryRoot {
  repository: string;
  hex: string;
}

export interface GcResult extends DeltaGcResult {
  manifestsRemoved: number;
  tagsRemoved: number;
  linksRemoved: number;
  blobsRemoved: number;
  bytesFreed: number;
  /** Blobs kept in the store after the run. */
  blobsKept: number;
}

/** Nothing younger than this is collected: a push in progress uploads blobs before the release names them. */
export const DEFAULT_GC_GRACE_MS = 24 * 3600 * 1000;

/**
 * The manifests releases need: every image of every release that is not failed (running ones are being deployed).
 * Images are recorded as `<registry host>/<repository>@sha256:<hex>`; the host is not compared, since the server's
 * public URL may have changed since. A tag reference (`<host>/<repository>:<tag>`) is resolved by the caller.
 */
export async function releaseImages(db: Db): Promise<string[]> {
  const rows = await db
    .selectFrom('release_services')
    .innerJoin('releases', 'releases.id', 'release_services.release_id')
    .select('release_services.image')
    .where('releases.status', '!=', 'failed')
    .where('release_services.image', 'is not', null)
    .execute();
  return rows.map((r) => r.image!).filter(Boolean);
}

/** `host/fleet/service@sha256:…` or `host/fleet/service:tag` → repository and digest or tag; undefined otherwise. */
export function parseImageRef(ref: string): { repository: string; hex?: string; tag?: string } | undefined {
  const slash = ref.indexOf('/');
  if (slash === -1) return undefined;
  const rest = ref.slice(slash + 1);
  // Repository names are lower-case path components (OCI distribution spec), so they hold no `@` or `:`.
  const digest = /^([a-z0-9._/-]+)@sha256:([0-9a-f]{64})$/.exec(rest);
  if (digest) return { repository: digest[1]!, hex: digest[2]! };
  const tagged = /^([a-z0-9._/-]+):([\w][\w.-]{0,127})$/.exec(rest);
  if (tagged) return { repository: tagged[1]!, tag: tagged[2]! };
  return undefined;
}

export interface GcOptions {
  graceMs?: number;
  now?: number;
  dryRun?: boolean;
  /**
   * Storage key of a repository named in an image (RegistryAccess.locate); undefined: not ours. Default: the
   * name itself (a registry whose keys are its names).
   */
  keyOf?: (repository: string) => string | undefined;
  /**
   * Whether the repository stored under `key` has no owner any more (its fleet was deleted). Such a repository is
   * unreachable, so it goes whole, without the grace period. Asked after the repository was listed.
   */
  orphaned?: (key: string) => Promise<boolean>;
}

/**
 * Removes what no release needs from the registry: manifests (and their tags) that no release that is not failed
 * names, links of repositories to blobs no kept manifest uses, and blobs no repository links any more. Anything
 * touched within `graceMs` is kept, so an upload or push in progress is never taken away; a manifest or blob that
 * cannot be read is kept too. Each kept manifest keeps its config, layers and (for an index) child manifests.
 * `dryRun` only counts.
 */
export async function collectGarbage(
  storage: RegistryStorage,
  images: readonly string[],
  options: GcOptions = {},
): Promise<GcResult> {
  const graceMs = options.graceMs ?? DEFAULT_GC_GRACE_MS;
  const now = options.now ?? Date.now();
  const young = async (path: string, orphan = false) => {
    if (orphan) return false;
    try {
      return now - (await stat(path)).mtimeMs < graceMs;
    } catch {
      return true; // gone or unreadable: not ours to judge
    }
  };
  // In a dry run nothing goes, but what would have gone must not protect anything either.
  const removed = new Set<string>();
  const remove = async (path: string) => {
    removed.add(path);
    if (!options.dryRun) await rm(path, { force: true });
  };
  const result: GcResult = {
    manifestsRemoved: 0,
    tagsRemoved: 0,
    linksRemoved: 0,
    blobsRemoved: 0,
    bytesFreed: 0,
    blobsKept: 0,
    deltaPairsRemoved: 0,
    deltasRemoved: 0,
    deltaBytesFreed: 0,
  };

  const roots = new Map<string, Set<string>>();
  for (const image of images) {
    const ref = parseImageRef(image);
    if (!ref) continue;
    const key = options.keyOf ? options.keyOf(ref.repository) : ref.repository;
    if (key === undefined) continue;
    const hex = ref.hex ?? (ref.tag ? (await storage.resolveTag(key, ref.tag))?.replace(/^sha256:/, '') : undefined);
    if (hex) (roots.get(key) ?? roots.set(key, new Set()).get(key)!).add(hex);
  }

  for (const repository of await repositories(storage)) {
    const dir = join(storage.repositoriesDir, repository);
    const orphan = (await options.orphaned?.(repository)) ?? false;
    const manifests = new Set(await listNames(join(dir, '_manifests')));
    const keep = new Set<string>();
    const used = new Set<string>();
    // An unreadable kept manifest may use any blob, so then no link of this repository is judged.
    let unreadable = false;
    // Roots: what releases name, and every manifest pushed within the grace period.
    const pending = orphan ? [] : [...(roots.get(repository) ?? [])].filter((hex) => manifests.has(hex));
    for (const hex of manifests) if (await young(join(dir, '_manifests', hex), orphan)) pending.push(hex);
    while (pending.length > 0) {
      const hex = pending.pop()!;
      if (keep.has(hex)) continue;
      keep.add(hex);
      used.add(hex);
      const references = await manifestReferences(storage, hex);
      if (references === undefined) {
        unreadable = true;
        continue;
      }
      for (const child of references.manifests) if (manifests.has(child)) pending.push(child);
      for (const blob of references.blobs) used.add(blob);
    }
    const tagsOf = new Map<string, string[]>();
    for (const tag of await storage.tags(repository)) {
      const digest = await storage.resolveTag(repository, tag);
      if (digest) tagsOf.set(digest, [...(tagsOf.get(digest) ?? []), tag]);
    }
    for (const hex of manifests) {
      if (keep.has(hex)) continue;
      for (const tag of tagsOf.get(`sha256:${hex}`) ?? []) {
        await remove(join(dir, '_tags', tag));
        result.tagsRemoved += 1;
      }
      await remove(join(dir, '_manifests', hex));
      result.manifestsRemoved += 1;
    }
    if (!unreadable) {
      for (const hex of await listNames(join(dir, '_blobs'))) {
        const link = join(dir, '_blobs', hex);
        if (used.has(hex) || (await young(link, orphan))) continue;
        await remove(link);
        result.linksRemoved += 1;
      }
    }
    // Whatever is left of an orphan (tags naming nothing, temp files) goes with its folder.
    if (orphan && !options.dryRun) {
      await rm(dir, { recursive: true, force: true });
      // And the owner's folder once it holds nothing more (rmdir refuses a folder that is not empty).
      for (let parent = dirname(dir); parent.startsWith(`${storage.repositoriesDir}/`); parent = dirname(parent))
        if (
          !(await rmdir(parent).then(
            () => true,
            () => false,
          ))
        )
          break;
    }
  }

  // Blobs no repository links any more (read again now, so a link made meanwhile still protects its blob).
  const linked = new Set<string>();
  for (const repository of await repositories(storage)) {
    const dir = join(storage.repositoriesDir, repository);
    for (const kind of ['_blobs', '_manifests']) {
      for (const hex of await listNames(join(dir, kind))) if (!removed.has(join(dir, kind, hex))) linked.add(hex);
    }
  }
  const blobRoot = join(storage.root, 'blobs', 'sha256');
  for (const prefix of await listNames(blobRoot)) {
    for (const hex of await listNames(join(blobRoot, prefix))) {
      const path = join(blobRoot, prefix, hex);
      if (linked.has(hex) || (await young(path))) {
        result.blobsKept += 1;
        continue;
      }
      const size = (await stat(path).catch(() => undefined))?.size ?? 0;
      await remove(path);
      result.blobsRemoved += 1;
      result.bytesFreed += size;
    }
  }

  // Deltas of manifests no longer kept (a manifest blob removed now, or in a dry run would be).
  const gone = async (hex: string) =>
    removed.has(storage.blobPath(hex)) ||
    (await stat(storage.blobPath(hex)).then(
      () => false,
      () => true,
    ));
  Object.assign(
    result,
    await collectDeltaGarbage(new DeltaStore(storage.root), gone, { graceMs, now, dryRun: options.dryRun }),
  );
  return result;
}

/** Every repository name (`fleet/service`, possibly deeper): folders holding `_manifests`, `_blobs` or `_tags`. */
async function repositories(storage: RegistryStorage): Promise<string[]> {
  const out: string[] = [];
  const walk = async (relative: string) => {
    const entries = await readdir(join(storage.repositoriesDir, relative), { withFileTypes: true }).catch(() => []);
    if (entries.some((e) => e.isDirectory() && (e.name === '_manifests' || e.name === '_blobs' || e.name === '_tags')))
      out.push(relative);
    for (const entry of entries)
      if (entry.isDirectory() && !entry.name.startsWith('_'))
        await walk(relative ? `${relative}/${entry.name}` : entry.name);
  };
  await walk('');
  return out;
}

async function listNames(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((name) => !name.includes('.tmp-'));
}

/** The digests a manifest names: child manifests of an index, config and layers of an image; undefined if unreadable. */
export async function manifestReferences(
  storage: RegistryStorage,
  hex: string,
): Promise<{ manifests: string[]; blobs: string[] } | undefined> {
  try {
    const body = JSON.parse(await readFile(storage.blobPath(hex), 'utf8')) as {
      manifests?: Array<{ digest?: string }>;
      config?: { digest?: string };
      layers?: Array<{ digest?: string }>;
    };
    const hexOf = (digest: string | undefined) => (digest?.startsWith('sha256:') ? digest.slice(7) : undefined);
    const manifests = (body.manifests ?? []).map((m) => hexOf(m.digest)).filter((h): h is string => h !== undefined);
    const blobs = [body.config, ...(body.layers ?? [])]
      .map((b) => hexOf(b?.digest))
      .filter((h): h is string => h !== undefined);
    return { manifests, blobs };
  } catch {
    return undefined;
  }
}
