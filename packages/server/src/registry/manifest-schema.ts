import { z } from 'zod';

/**
 * The parts of image manifests and indexes the registry relies on (OCI image spec, Docker v2 schema 2). Other
 * fields pass unchecked: the stored bytes are what was pushed. INVARIANT: a document that does not parse here is
 * refused with MANIFEST_INVALID before anything is read from it, so no shape of input reaches a property access
 * that could throw.
 */
const descriptor = z.object({
  mediaType: z.string().max(255).optional(),
  // Only sha256 is accepted anywhere in this registry.
  digest: z.string().regex(/^sha256:[a-f0-9]{64}$/, 'a descriptor needs a sha256 digest'),
  size: z.number().int().nonnegative().optional(),
});

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2).optional(),
  mediaType: z.string().optional(),
  config: descriptor,
  layers: z.array(descriptor).max(1000),
});

export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2).optional(),
  mediaType: z.string().optional(),
  manifests: z.array(descriptor).max(1000),
});

/** Only the declared media type, to choose the schema. */
export const manifestHeadSchema = z.object({ mediaType: z.string().optional() });

/** The first problem zod found, for the error message. */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid';
  return issue.path.length === 0 ? issue.message : `${issue.path.join('.')}: ${issue.message}`;
}
