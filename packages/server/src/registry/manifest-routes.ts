import { createHash } from 'node:crypto';
import { RegistryError } from './errors.js';
import type { HandlerContext } from './handler-context.js';
import { checkQuota } from './blob-routes.js';
import { firstIssue, imageIndexSchema, imageManifestSchema, manifestHeadSchema } from './manifest-schema.js';
import { digestHex, isTag } from './names.js';

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export const MANIFEST_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const INDEX_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

async function readBody(ctx: HandlerContext): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of ctx.body) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    total += buffer.length;
    if (total > MAX_MANIFEST_BYTES)
      throw new RegistryError('SIZE_INVALID', `a manifest may not exceed ${MAX_MANIFEST_BYTES} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

/** Resolves a tag or digest reference to the manifest digest hex, if this repository has it. */
async function resolve(ctx: HandlerContext, key: string, reference: string): Promise<string | undefined> {
  const digest = reference.startsWith('sha256:') ? reference : await ctx.storage.resolveTag(key, reference);
  const hex = digest === undefined ? undefined : digestHex(digest);
  if (!hex) return undefined;
  return (await ctx.storage.manifestMediaType(key, hex)) === undefined ? undefined : hex;
}

export async function handleManifest(ctx: HandlerContext, reference: string): Promise<unknown> {
  const { storage, request, reply } = ctx;
  const { name, key } = ctx.repository;
  const byDigest = reference.startsWith('sha256:');
  if (byDigest ? !digestHex(reference) : !isTag(reference))
    throw new RegistryError(byDigest ? 'DIGEST_INVALID' : 'TAG_INVALID', `invalid reference ${reference}`);
  switch (request.method) {
    case 'GET':
    case 'HEAD': {
      const hex = await resolve(ctx, key, reference);
      const mediaType = hex === undefined ? undefined : await storage.manifestMediaType(key, hex);
      if (hex === undefined || mediaType === undefined)
        throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { name, reference } });
      const size = await storage.blobSize(hex);
      if (size === undefined)
        throw new RegistryError('MANIFEST_UNKNOWN', 'manifest content is missing', { detail: { name, reference } });
      void reply.headers({
        'content-type': mediaType,
        'docker-content-digest': `sha256:${hex}`,
        'content-length': String(size),
        etag: `"sha256:${hex}"`,
      });
      return request.method === 'HEAD' ? reply.send() : reply.send(storage.readBlob(hex));
    }
    case 'PUT':
      return putManifest(ctx, reference);
    case 'DELETE': {
      if (!byDigest) {
        if (!(await storage.deleteTag(key, reference))) throw new RegistryError('MANIFEST_UNKNOWN', 'tag unknown');
        return reply.status(202).header('content-length', '0').send();
      }
      const hex = digestHex(reference) ?? '';
      if (!(await storage.deleteManifest(key, hex))) throw new RegistryError('MANIFEST_UNKNOWN', 'manifest unknown');
      return reply.status(202).header('content-length', '0').send();
    }
    default:
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`);
  }
}

async function putManifest(ctx: HandlerContext, reference: string): Promise<unknown> {
  const { storage, request, reply } = ctx;
  const { name, key } = ctx.repository;
  const bytes = await readBody(ctx);
  const hex = createHash('sha256').update(bytes).digest('hex');
  const digest = `sha256:${hex}`;
  if (reference.startsWith('sha256:') && reference !== digest)
    throw new RegistryError('DIGEST_INVALID', 'the manifest does not match the digest in the URL', {
      detail: { computed: digest },
    });
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new RegistryError('MANIFEST_INVALID', 'the manifest is not valid JSON');
  }
  const head = manifestHeadSchema.safeParse(doc);
  if (!head.success)
    throw new RegistryError('MANIFEST_INVALID', `the manifest is malformed: ${firstIssue(head.error)}`);
  const headerType = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  const mediaType = MANIFEST_MEDIA_TYPES.has(headerType) ? headerType : (head.data.mediaType ?? '');
  if (!MANIFEST_MEDIA_TYPES.has(mediaType))
    throw new RegistryError('MANIFEST_INVALID', `unsupported manifest media type ${mediaType || '(none)'}`);

  // INVARIANT: a manifest is accepted only when everything it references is already in this repository, so a
  // device never gets a manifest whose layers cannot be pulled.
  if (INDEX_TYPES.has(mediaType)) {
    const index = imageIndexSchema.safeParse(doc);
    if (!index.success)
      throw new RegistryError('MANIFEST_INVALID', `the index is malformed: ${firstIssue(index.error)}`);
    for (const child of index.data.manifests) {
      if ((await storage.manifestMediaType(key, digestHex(child.digest) ?? '')) === undefined)
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `manifest ${child.digest} is not in ${name}`, {
          detail: { digest: child.digest },
        });
    }
  } else {
    const image = imageManifestSchema.safeParse(doc);
    if (!image.success)
      throw new RegistryError('MANIFEST_INVALID', `the image manifest is malformed: ${firstIssue(image.error)}`);
    for (const descriptor of [image.data.config, ...image.data.layers]) {
      const blobHex = digestHex(descriptor.digest) ?? '';
      if (!(await storage.isLinked(key, blobHex)) || (await storage.blobSize(blobHex)) === undefined) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', `blob ${descriptor.digest} is not in ${name}`, {
          detail: { digest: descriptor.digest },
        });
      }
    }
  }
  await checkQuota(ctx, bytes.length, hex);
  await storage.putBlobBytes(hex, bytes);
  await storage.putManifestLink(key, hex, mediaType);
  if (!reference.startsWith('sha256:')) await storage.putTag(key, reference, digest);
  return reply
    .status(201)
    .headers({ location: `/v2/${name}/manifests/${digest}`, 'docker-content-digest': digest, 'content-length': '0' })
    .send();
}

export async function handleTags(ctx: HandlerContext): Promise<unknown> {
  const { storage, request, reply, query } = ctx;
  const { name, key } = ctx.repository;
  if (request.method !== 'GET') throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`);
  if (!(await storage.repositoryExists(key)))
    throw new RegistryError('NAME_UNKNOWN', 'repository name not known to registry', { detail: { name } });
  let tags = await storage.tags(key);
  const last = query.get('last');
  if (last !== null) tags = tags.filter((t) => t > last);
  const n = query.get('n');
  if (n !== null && /^\d+$/.test(n) && tags.length > Number(n)) {
    tags = tags.slice(0, Number(n));
    void reply.header(
      'link',
      `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags.at(-1) ?? '')}>; rel="next"`,
    );
  }
  return reply.send({ name, tags });
}
