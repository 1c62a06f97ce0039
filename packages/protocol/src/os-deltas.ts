import { z } from 'zod';
import { osVersionSchema } from './os-releases.js';

/**
 * Host OS updates by delta (issue 17; docs/protocol.md, server deltas/README.md "OS deltas"). A device about to write
 * OS release B's slot image asks for a delta from the OS its booted slot holds (named by its slot image's sha256 when
 * the device knows it, else by its version), downloads it with Range (it resumes), checks that its booted slot's
 * first `sourceSize` bytes hash to `sourceSha256`, and decodes `xdelta3 -d -s <source> <delta>` into the inactive
 * slot; the slot writer checks B's sha256 as for a full download. Any failure: the device downloads the full image.
 *
 * Encoding: one VCDIFF (xdelta3 `-e -9 -S lzma -A`) of B's slot image against A's whole slot image. The device
 * decodes with `-B DELTA_SOURCE_WINDOW_BYTES` from a regular file holding A's image (xdelta3 reads a block device as
 * a non-seekable source and fails on copies from behind its window).
 */

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'a hex sha256');

/** `POST DEVICE_ROUTES.osDeltaRequest`: exactly one of `fromVersion` and `fromSha256`. */
export const osDeltaRequestSchema = z
  .strictObject({
    /** The booted OS's version (os-release VERSION_ID): the organization's release of that version is the source. */
    fromVersion: osVersionSchema.optional(),
    /** The booted slot's image sha256 (hex), when the device wrote it itself. */
    fromSha256: sha256Hex.optional(),
    /** The slot image of the OS release to install (target state `os.sha256`). */
    toSha256: sha256Hex,
  })
  .refine((r) => (r.fromVersion === undefined) !== (r.fromSha256 === undefined), {
    message: 'give exactly one of fromVersion and fromSha256',
  });
export type OsDeltaRequest = z.infer<typeof osDeltaRequestSchema>;

export const osDeltaDescriptorSchema = z.object({
  /** sha256 of the delta file (`sha256:<hex>`): checked before a byte of it is decoded. */
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
  size: z.number().int().positive(),
  /** DEVICE_ROUTES.osDeltaDownload, filled in; GET it with Range to resume. */
  path: z.string().startsWith('/'),
  /** The source image: the booted slot's first `sourceSize` bytes must hash to this, else the device downloads B. */
  sourceSha256: sha256Hex,
  sourceSize: z.number().int().positive(),
  /** What decoding gives: B's slot image. */
  targetSha256: sha256Hex,
  targetSize: z.number().int().positive(),
});
export type OsDeltaDescriptor = z.infer<typeof osDeltaDescriptorSchema>;

export const osDeltaAnswerSchema = z.discriminatedUnion('status', [
  /** Being computed: ask again after `retryAfterMs`; the device downloads the full image once its own limit is over. */
  z.object({ status: z.literal('pending'), retryAfterMs: z.number().int().positive() }),
  z.object({ status: z.literal('ready'), delta: osDeltaDescriptorSchema }),
]);
export type OsDeltaAnswer = z.infer<typeof osDeltaAnswerSchema>;
