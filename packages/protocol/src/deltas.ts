import { z } from 'zod';

/**
 * Flotilla's own delta updates (docs/protocol.md, server deltas/README.md). A device that needs image B of a release
 * and runs image A of the same service asks for a delta between them by their image ids (the `image_id` of target
 * state, so the server checks both belong to releases of the device's own fleet), downloads it with Range (it
 * resumes), rebuilds B's new layers from A's, and loads B only if every layer's sha256 equals B's config diffIDs.
 *
 * The balena delta endpoint (DEVICE_ROUTES.delta) is a different format, for balenaOS devices.
 */

/**
 * Per layer, against A's layer at the same index, each layer with the encoder that gave the smaller delta (its
 * `method`). v1 was xdelta3 only: an agent that knows only v1 rejects a v2 answer and pulls.
 */
export const DELTA_FORMAT = 'layers-v2';

/**
 * How one layer was encoded. xdelta3: VCDIFF with lzma secondary compression, source window
 * DELTA_SOURCE_WINDOW_BYTES. zstd: `zstd --patch-from=<A's layer> --long=<log>`, one frame, window log at most
 * DELTA_ZSTD_MAX_WINDOW_LOG (it finds matches anywhere in A's layer, where xdelta3 finds only nearby ones).
 */
export const deltaMethodSchema = z.enum(['xdelta3', 'zstd']);
export type DeltaMethod = z.infer<typeof deltaMethodSchema>;

/**
 * Largest zstd window (log2 bytes) a delta uses; the device's decoder is started with `--memory` of this size and
 * refuses a frame asking for more. INVARIANT: the server only encodes with zstd layers whose source and target both
 * fit in the window (zstd's --patch-from sets the window to cover the larger of the two).
 */
export const DELTA_ZSTD_MAX_WINDOW_LOG = 28;

/** Most byte ranges a layer's reordered source may have (the device checks it before building the source). */
export const DELTA_MAX_REORDER_RANGES = 200_000;

/**
 * xdelta3's source window (`-B`) on the device: it bounds the decoder's memory (the issue's 256 MB budget for small
 * boards; decoding holds at most this much of the source). The server may encode with a larger window (up to
 * 256 MiB, so a layer just over 128 MiB is indexed whole): the decoder reads the source from a file and seeks back for
 * copies outside its window, so any window decodes any delta (measured byte-identical; server deltas/README.md).
 * INVARIANT: the source is a seekable file on the device, never a pipe.
 */
export const DELTA_SOURCE_WINDOW_BYTES = 128 * 1024 * 1024;

const sha256Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);
const imageId = z.number().int().positive();

export const deltaRequestSchema = z.object({ fromImageId: imageId, toImageId: imageId });
export type DeltaRequest = z.infer<typeof deltaRequestSchema>;

/** One layer of B rebuilt by the delta: its bytes are `[offset, offset + length)` of the delta file. */
export const deltaLayerSchema = z.object({
  /** B's layer, as its config's rootfs.diff_ids names it: the sha256 of the rebuilt (uncompressed) tar. */
  diffId: sha256Digest,
  /** Size of the rebuilt tar. */
  size: z.number().int().nonnegative(),
  /** A's layer the delta copies from (A's layer at the same index); null: an empty source. */
  source: sha256Digest.nullable(),
  /** The encoder of this layer's bytes (absent in pairs computed before zstd existed: xdelta3). */
  method: deltaMethodSchema.default('xdelta3'),
  /**
   * Null: the encoder's source is A's layer as it is. Otherwise the bytes `[offset, offset + length)` of the delta
   * file are a gzip-compressed JSON array of byte ranges `[start, length]` of A's layer `source`, or `[start, length,
   * i]` of `extraSources[i - 1]`: the encoder's source is those ranges concatenated (A's tar entries in B's order,
   * taken from whichever of A's layers holds them; at most DELTA_MAX_REORDER_RANGES ranges).
   */
  reorder: z
    .object({ offset: z.number().int().nonnegative(), length: z.number().int().positive() })
    .nullable()
    .default(null),
  /** A's other layers the reorder ranges copy from (files that moved between layers, e.g. apt's caches). */
  extraSources: z.array(sha256Digest).max(256).default([]),
  offset: z.number().int().nonnegative(),
  length: z.number().int().nonnegative(),
});
export type DeltaLayer = z.infer<typeof deltaLayerSchema>;

export const deltaDescriptorSchema = z.object({
  format: z.literal(DELTA_FORMAT),
  /** sha256 of the whole delta file: what the device checks before using a byte of it. */
  digest: sha256Digest,
  size: z.number().int().nonnegative(),
  /** Download path (DEVICE_ROUTES.deltaDownload, filled in); GET it with Range to resume. */
  path: z.string().startsWith('/'),
  /** B's image config (its image ID in the engine), verbatim: the device loads B with it. */
  config: z.string().min(2),
  /** sha256 of `config`: the image ID the engine must report once B is loaded. */
  configDigest: sha256Digest,
  /** B's layers that A lacks, in B's rootfs order; every other layer of B is one A has. */
  layers: z.array(deltaLayerSchema),
  /** Bytes a plain pull of the same layers downloads (their compressed sizes in B's manifest). */
  pullBytes: z.number().int().nonnegative(),
});
export type DeltaDescriptor = z.infer<typeof deltaDescriptorSchema>;

export const deltaAnswerSchema = z.discriminatedUnion('status', [
  /** Being computed: ask again after `retryAfterMs`; the device pulls once its own time limit is over. */
  z.object({ status: z.literal('pending'), retryAfterMs: z.number().int().positive() }),
  z.object({ status: z.literal('ready'), delta: deltaDescriptorSchema }),
]);
export type DeltaAnswer = z.infer<typeof deltaAnswerSchema>;

/** What became of a delta on the device, for the server's metrics and log. */
export const deltaOutcomeSchema = z.object({
  fromImageId: imageId,
  toImageId: imageId,
  /** applied: B was loaded from the delta; fallback: the device pulled B instead (see `reason`). */
  outcome: z.enum(['applied', 'fallback']),
  reason: z.string().max(500).optional(),
  /** Delta bytes downloaded over the network for this update (resumed parts counted once). */
  bytesDownloaded: z.number().int().nonnegative(),
  /** What a plain pull of the same layers would have downloaded. */
  pullBytes: z.number().int().nonnegative(),
});
export type DeltaOutcome = z.infer<typeof deltaOutcomeSchema>;

/**
 * The tag an image rebuilt from a delta is loaded under. `docker load` can only set tags, never the `repo@digest`
 * reference a target state names and a pull records, so the agent treats `<repo>:flotilla-delta-<manifest hex>` as
 * that reference: the planner (findImage) and the engine adapter (imageId, createContainer, removeImage) look for
 * it whenever the digest reference itself is not in the engine.
 * INVARIANT: only ever put on an image whose ID the agent checked equals the target's config digest, so the tag
 * names exactly the image the digest reference would have pulled.
 */
export const DELTA_TAG_PREFIX = 'flotilla-delta-';

/** `host/repo@sha256:<hex>` → `host/repo:flotilla-delta-<hex>`; undefined for a reference without a digest. */
export function deltaTag(ref: string): string | undefined {
  const match = /^(.+)@sha256:([0-9a-f]{64})$/.exec(ref);
  return match ? `${match[1]}:${DELTA_TAG_PREFIX}${match[2]}` : undefined;
}
