import { z } from 'zod';
import { targetDeviceSchema } from './device-api.js';
import { commitSchema } from './ids.js';

/**
 * A preload: a fleet's release written into a device disk image's data partition by `flotilla os preload`, so the
 * device runs its app at first boot with no network (air-gapped sites, factory provisioning). The agent reads it from
 * `<data dir>/preload/` once, at start (agent/src/preload/). The manifest is written last, so a cut write leaves no
 * manifest and no preload, never half of one.
 */

/** Where the preload lives inside the data partition; the agent's data folder is `/flotilla` on that partition. */
export const PRELOAD_DIR_IN_PARTITION = 'flotilla/preload';
export const PRELOAD_MANIFEST_FILE = 'manifest.json';
/** Filesystem labels (or GPT names) of the data partition, in order of preference: balenaOS's first. */
export const DATA_PARTITION_LABELS = ['resin-data', 'flotilla-data', 'data'] as const;

const sha256Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256:<64 hex>');
/** The reference the target state names: pinned by manifest digest, so the image is exactly the release's. */
const digestRef = z
  .string()
  .max(1000)
  .regex(/^[^\s@]+@sha256:[0-9a-f]{64}$/, 'must be <repository>@sha256:<64 hex>');
/** A plain name beside manifest.json: no path separator, so a crafted manifest cannot point the agent elsewhere. */
const fileName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be a plain file name')
  .refine((name) => name !== PRELOAD_MANIFEST_FILE, 'must not be the manifest');

export const preloadImageSchema = z.strictObject({
  /** The service image as the target names it. */
  ref: digestRef,
  /** The image's config digest, which is the ID the engine gives it once loaded: checked after `docker load`. */
  imageId: sha256Digest,
  /** A `docker save` tar beside manifest.json, its one tag the agent's load tag for `ref` (agent deltas/delta-tag.ts). */
  file: fileName,
  /** Of the tar's bytes, checked before it is loaded. */
  sha256: sha256Digest,
  size: z.number().int().nonnegative(),
});
export type PreloadImage = z.infer<typeof preloadImageSchema>;

export const preloadManifestSchema = z
  .strictObject({
    version: z.literal(1),
    createdAt: z.iso.datetime(),
    fleet: z.strictObject({ id: z.number().int().positive(), uuid: z.string().min(1).max(64), slug: z.string() }),
    release: z.strictObject({ id: z.number().int().positive(), commit: commitSchema, version: z.string().max(100) }),
    /** One device's part of the target state (as the device endpoint serves it), with the fleet's app only. */
    target: targetDeviceSchema,
    images: z.array(preloadImageSchema).max(200),
  })
  .superRefine((manifest, ctx) => {
    const apps = Object.entries(manifest.target.apps);
    const [uuid, app] = apps[0] ?? [];
    if (apps.length !== 1 || uuid !== manifest.fleet.uuid)
      ctx.addIssue({ code: 'custom', path: ['target', 'apps'], message: "must hold exactly the fleet's app" });
    const releases = Object.keys(app?.releases ?? {});
    if (releases.length !== 1 || releases[0] !== manifest.release.commit)
      ctx.addIssue({ code: 'custom', path: ['target', 'apps'], message: 'must hold exactly the release' });
    const refs = new Set(manifest.images.map((i) => i.ref));
    for (const release of Object.values(app?.releases ?? {}))
      for (const [name, service] of Object.entries(release.services))
        if (!refs.has(service.image))
          ctx.addIssue({ code: 'custom', path: ['images'], message: `no image file for service ${name}` });
    const files = manifest.images.map((i) => i.file);
    if (new Set(files).size !== files.length)
      ctx.addIssue({ code: 'custom', path: ['images'], message: 'two images share a file' });
  });
export type PreloadManifest = z.infer<typeof preloadManifestSchema>;
