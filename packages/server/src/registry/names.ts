/**
 * Validators for the parts of a registry URL. INVARIANT: a name, tag or digest that passes these can be joined
 * into a storage path without escaping the storage folder (no `..`, no absolute paths, no empty segments).
 */
const NAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^sha256:([a-f0-9]{64})$/;
const UPLOAD_ID = /^[a-f0-9-]{36}$/;

export function isRepositoryName(name: string): boolean {
  return name.length <= 255 && NAME.test(name);
}

export function isTag(ref: string): boolean {
  return TAG.test(ref);
}

/** The hex part of a `sha256:` digest, or undefined when it is not one (other algorithms are not accepted). */
export function digestHex(digest: string): string | undefined {
  return DIGEST.exec(digest)?.[1];
}

export function isUploadId(id: string): boolean {
  return UPLOAD_ID.test(id);
}

export type RegistryRoute =
  | { kind: 'base' }
  | { kind: 'uploads'; name: string; uploadId?: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string };

/** Splits the path after `/v2/` into what it addresses; undefined for anything else. */
export function parseRegistryPath(rest: string): RegistryRoute | undefined {
  if (rest === '') return { kind: 'base' };
  let m = /^(.+)\/blobs\/uploads\/([^/]*)$/.exec(rest);
  if (m?.[1] !== undefined) {
    const uploadId = m[2] ?? '';
    if (uploadId !== '' && !isUploadId(uploadId)) return undefined;
    return uploadId === '' ? { kind: 'uploads', name: m[1] } : { kind: 'uploads', name: m[1], uploadId };
  }
  m = /^(.+)\/blobs\/([^/]+)$/.exec(rest);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: 'blob', name: m[1], digest: m[2] };
  m = /^(.+)\/manifests\/([^/]+)$/.exec(rest);
  if (m?.[1] !== undefined && m[2] !== undefined) return { kind: 'manifest', name: m[1], reference: m[2] };
  m = /^(.+)\/tags\/list$/.exec(rest);
  if (m?.[1] !== undefined) return { kind: 'tags', name: m[1] };
  return undefined;
}

/**
 * Text with the ID of every upload path (`/blobs/uploads/<id>`, `uploads/<id>` on disk) replaced, for logs.
 * WARNING: an upload ID is a capability (with it its owner can write); it must never reach a log.
 */
export function redactUploadIds(text: string): string {
  return text.replace(/(uploads\/)[^/?#\s'"]+/g, '$1[redacted]');
}
