import { mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/database.js';
import { fleetRepositoryKey } from './fleet-repositories.js';
import { manifestReferences } from './gc.js';
import type { RegistryStorage } from './storage.js';

export interface LayoutMigrationResult {
  /** Files (links, manifest links, tags) moved to the fleet's storage key. */
  moved: number;
  /** Files left behind: of a deleted fleet, or written before the fleet that now has the slug existed. */
  dropped: number;
}

const KINDS = ['_blobs', '_manifests', '_tags'] as const;

/**
 * Moves the repositories of the first layout (`repositories/<fleet slug>/<service>`) to their fleet's storage key
 * (`repos/<fleet uuid>/<service>`), once, on start, before the registry serves.
 *
 * A slug may have changed hands before this runs (fleet deleted, slug taken by another organization), and the
 * first layout could not tell the owners apart. So only what the current fleet can have written moves: manifest
 * links and tags written since the fleet was created, blob links written since then or used by such a manifest
 * (a push that found a layer already there did not write its link again). The rest, and every repository whose
 * slug no fleet has, is dropped; its blobs go at the next garbage collection.
 *
 * INVARIANT (crash safety): each file moves by one rename(), and what decides that a file moves is computed from
 * the old and the new place together, so a run cut short anywhere and run again (on any node, even two at once)
 * ends in the same state. The old folder goes only once emptied.
 */
export async function migrateRepositoryLayout(storage: RegistryStorage, db: Db): Promise<LayoutMigrationResult> {
  const legacy = join(storage.root, 'repositories');
  const result: LayoutMigrationResult = { moved: 0, dropped: 0 };
  for (const slug of await names(legacy)) {
    const fleet = await db
      .selectFrom('fleets')
      .select(['uuid', 'created_at'])
      .where('slug', '=', slug)
      .executeTakeFirst();
    for (const service of await repositoriesUnder(join(legacy, slug))) {
      const from = join(legacy, slug, service);
      // A repository was always `<slug>/<service>`: anything directly under a slug had no fleet to belong to.
      if (fleet && service !== '') {
        const to = join(storage.repositoriesDir, fleetRepositoryKey(fleet.uuid, service));
        result.moved += await moveRepository(storage, from, to, Date.parse(fleet.created_at));
      }
      for (const kind of KINDS) result.dropped += (await names(join(from, kind))).length;
    }
    await rm(join(legacy, slug), { recursive: true, force: true });
  }
  await rmdir(legacy).catch(() => undefined);
  return result;
}

async function moveRepository(storage: RegistryStorage, from: string, to: string, since: number): Promise<number> {
  const recent = async (file: string) => ((await stat(file).catch(() => undefined))?.mtimeMs ?? 0) >= since;
  // Manifests the fleet pushed: recent ones here, and any an interrupted run already moved.
  const manifests = new Set(await names(join(to, '_manifests')));
  for (const hex of await names(join(from, '_manifests')))
    if (await recent(join(from, '_manifests', hex))) manifests.add(hex);
  const usedBlobs = new Set<string>();
  const pending = [...manifests];
  while (pending.length > 0) {
    const references = await manifestReferences(storage, pending.pop() ?? '');
    for (const child of references?.manifests ?? []) {
      if (!manifests.has(child)) {
        manifests.add(child);
        pending.push(child);
      }
    }
    for (const blob of references?.blobs ?? []) usedBlobs.add(blob);
  }
  let moved = 0;
  const move = async (kind: string, name: string) => {
    await mkdir(join(to, kind), { recursive: true });
    try {
      await rename(join(from, kind, name), join(to, kind, name));
      moved += 1;
    } catch (error) {
      // Moved meanwhile by another node: nothing to do.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  };
  // Links first, then manifests, then tags: what the new place shows is complete at every step.
  for (const hex of await names(join(from, '_blobs')))
    if (usedBlobs.has(hex) || (await recent(join(from, '_blobs', hex)))) await move('_blobs', hex);
  for (const hex of await names(join(from, '_manifests'))) if (manifests.has(hex)) await move('_manifests', hex);
  const newerTags = new Set(await names(join(to, '_tags')));
  for (const tag of await names(join(from, '_tags'))) {
    // A tag already in the new place was written later than this one: it wins.
    if (newerTags.has(tag) || !(await recent(join(from, '_tags', tag)))) continue;
    await move('_tags', tag);
  }
  return moved;
}

/** Repository folders (holding `_blobs`, `_manifests` or `_tags`) below `dir`, as relative paths. */
async function repositoriesUnder(dir: string, relative = ''): Promise<string[]> {
  const entries = await readdir(join(dir, relative), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  if (entries.some((e) => e.isDirectory() && (KINDS as readonly string[]).includes(e.name))) out.push(relative);
  for (const entry of entries)
    if (entry.isDirectory() && !entry.name.startsWith('_'))
      out.push(...(await repositoriesUnder(dir, relative ? `${relative}/${entry.name}` : entry.name)));
  return out;
}

async function names(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((name) => !name.includes('.tmp-'));
}
