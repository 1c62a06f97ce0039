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
