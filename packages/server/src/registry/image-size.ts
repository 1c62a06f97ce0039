import { readFile } from 'node:fs/promises';
import { type Platform, formatPlatform, runsOn } from '@flotilla/protocol';
import { z } from 'zod';
import { fleetRepositoryKey } from './fleet-repositories.js';
import { parseImageRef } from './gc.js';
import { imageIndexSchema, imageManifestSchema } from './manifest-schema.js';
import type { RegistryStorage } from './storage.js';

/** The fleet an image belongs to: its repositories are `<slug>/<service>`, stored under its uuid. */
export interface ImageOwner {
  slug: string;
  uuid: string;
  /** What the fleet's devices run: picks the one image of a multi-platform index. */
  platform: Platform | undefined;
}

/** Child manifests of an index with the platform each is for (the registry's schema leaves `platform` out). */
const indexPlatforms = z.object({
  manifests: z.array(
    z.object({
      digest: z.string(),
      platform: z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).optional(),
    }),
  ),
});

type Parsed =
  | { kind: 'image'; blobs: { hex: string; size: number | undefined }[] }
  | { kind: 'index'; children: { hex: string; platform: { os: string; architecture: string; variant?: string } }[] }
  | { kind: 'unreadable' };

const CACHE_ENTRIES = 10_000;

/**
 * The size of a release's image as the registry holds it: the bytes its manifest names (config plus layers, as
 * pushed, so compressed layers count compressed). A multi-platform index counts the one image for the fleet's
 * platform. INVARIANT: only the fleet's own repositories are read, as the registry's access rules and garbage
 * collector do, so a release naming another fleet's image learns nothing of it; and only a manifest still linked in
 * that repository counts (one that was collected has no size). Parsed manifests are cached by digest: a digest's
 * content never changes.
 */
export class ImageSizes {
  private readonly parsed = new Map<string, Parsed>();

  constructor(private readonly storage: RegistryStorage) {}

  /** Bytes of `image` (`<host>/<slug>/<service>@sha256:…` or `:<tag>`), or null when this registry does not hold it. */
  async of(image: string, owner: ImageOwner): Promise<number | null> {
    const ref = parseImageRef(image);
    if (!ref) return null;
    const slash = ref.repository.indexOf('/');
    if (slash <= 0 || ref.repository.slice(0, slash) !== owner.slug) return null;
    const key = fleetRepositoryKey(owner.uuid, ref.repository.slice(slash + 1));
    const hex =
      ref.hex ?? (ref.tag ? (await this.storage.resolveTag(key, ref.tag))?.replace(/^sha256:/, '') : undefined);
    if (!hex) return null;
    const top = await this.manifest(key, hex);
    if (top.kind === 'image') return this.sum(top.blobs);
    if (top.kind === 'unreadable' || !owner.platform) return null;
    const platform = owner.platform;
    const fits = top.children.filter((c) => runsOn(c.platform, platform));
    const exact = fits.filter((c) => formatPlatform(c.platform) === formatPlatform(platform));
    const chosen = exact.length === 1 ? exact[0] : fits.length === 1 ? fits[0] : undefined;
    if (!chosen) return null;
    const child = await this.manifest(key, chosen.hex);
    return child.kind === 'image' ? this.sum(child.blobs) : null;
  }

  private async manifest(key: string, hex: string): Promise<Parsed> {
    if ((await this.storage.manifestMediaType(key, hex)) === undefined) return { kind: 'unreadable' };
    const cached = this.parsed.get(hex);
    if (cached) return cached;
    const parsed = await this.read(hex);
    if (parsed.kind !== 'unreadable') {
      if (this.parsed.size >= CACHE_ENTRIES) this.parsed.delete(this.parsed.keys().next().value as string);
      this.parsed.set(hex, parsed);
    }
    return parsed;
  }

  private async read(hex: string): Promise<Parsed> {
    let body: unknown;
    try {
      body = JSON.parse(await readFile(this.storage.blobPath(hex), 'utf8'));
    } catch {
      return { kind: 'unreadable' };
    }
    const hexOf = (digest: string) => digest.slice('sha256:'.length);
    const image = imageManifestSchema.safeParse(body);
    if (image.success) {
      return {
        kind: 'image',
        blobs: [image.data.config, ...image.data.layers].map((d) => ({ hex: hexOf(d.digest), size: d.size })),
      };
    }
    const index = imageIndexSchema.safeParse(body);
    const platforms = indexPlatforms.safeParse(body);
    if (!index.success || !platforms.success) return { kind: 'unreadable' };
    const children: Extract<Parsed, { kind: 'index' }>['children'] = [];
    for (const child of platforms.data.manifests) {
      if (child.platform && /^sha256:[a-f0-9]{64}$/.test(child.digest))
        children.push({ hex: hexOf(child.digest), platform: child.platform });
    }
    return { kind: 'index', children };
  }

  /** The declared sizes; a descriptor without one (optional in the spec) counts the stored blob's bytes. */
  private async sum(blobs: { hex: string; size: number | undefined }[]): Promise<number | null> {
    let total = 0;
    for (const blob of blobs) {
      const size = blob.size ?? (await this.storage.blobSize(blob.hex));
      if (size === undefined) return null;
      total += size;
    }
    return total;
  }
}
