import { RegistryError } from './errors.js';
import type { HandlerContext } from './handler-context.js';
import { digestHex } from './names.js';

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function rangeHeader(size: number): string {
  // Distribution's convention: an empty upload reports "0-0".
  return `0-${Math.max(size - 1, 0)}`;
}

/** POST starts (or, with ?digest=, completes; with ?mount=&from=, mounts), PATCH appends, PUT finishes, GET reports, DELETE cancels. */
export async function handleUploads(ctx: HandlerContext, name: string, uploadId: string | undefined): Promise<unknown> {
  const { storage, request, reply, query } = ctx;
  const method = request.method;
  if (uploadId === undefined) {
    if (method !== 'POST') throw new RegistryError('UNSUPPORTED', `${method} is not supported here`);
    const mount = query.get('mount');
    const from = query.get('from');
    if (mount !== null && from !== null) {
      const hex = digestHex(mount);
      if (hex && (await storage.isLinked(from, hex)) && (await storage.blobSize(hex)) !== undefined) {
        await storage.link(name, hex);
        return reply
          .status(201)
          .headers({ location: `/v2/${name}/blobs/${mount}`, 'docker-content-digest': mount, 'content-length': '0' })
          .send();
      }
      // Not mountable: fall through to a normal upload, as the spec requires.
    }
    const id = await storage.startUpload();
    const digest = query.get('digest');
    if (digest !== null) return finish(ctx, name, id, digest, true);
    return reply
      .status(202)
      .headers({ location: uploadLocation(name, id), 'docker-upload-uuid': id, range: '0-0', 'content-length': '0' })
      .send();
  }

  const size = await storage.uploadSize(uploadId);
  if (size === undefined) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'no such upload');
  switch (method) {
    case 'GET':
      return reply
        .status(204)
        .headers({
          location: uploadLocation(name, uploadId),
          'docker-upload-uuid': uploadId,
          range: rangeHeader(size),
          'content-length': '0',
        })
        .send();
    case 'DELETE':
      await storage.cancelUpload(uploadId);
      return reply.status(204).send();
    case 'PATCH': {
      const contentRange = request.headers['content-range'];
      if (typeof contentRange === 'string') {
        const m = /^(?:bytes[ =])?(\d+)-(\d+)$/.exec(contentRange.trim());
        if (!m || Number(m[1]) !== size) {
          return reply
            .status(416)
            .headers({ location: uploadLocation(name, uploadId), range: rangeHeader(size) })
            .send(new RegistryError('RANGE_INVALID', `upload is at ${size} bytes`).toBody());
        }
      }
      const newSize = await storage.appendUpload(uploadId, ctx.body);
      return reply
        .status(202)
        .headers({
          location: uploadLocation(name, uploadId),
          'docker-upload-uuid': uploadId,
          range: rangeHeader(newSize),
          'content-length': '0',
        })
        .send();
    }
    case 'PUT': {
      const digest = query.get('digest');
      if (digest === null) throw new RegistryError('DIGEST_INVALID', 'the digest parameter is required');
      return finish(ctx, name, uploadId, digest, true);
    }
    default:
      throw new RegistryError('UNSUPPORTED', `${method} is not supported here`);
  }
}

async function finish(
  ctx: HandlerContext,
  name: string,
  uploadId: string,
  digest: string,
  withBody: boolean,
): Promise<unknown> {
  const { storage, reply } = ctx;
  const hex = digestHex(digest);
  if (!hex) {
    await storage.cancelUpload(uploadId);
    throw new RegistryError('DIGEST_INVALID', 'only sha256 digests are accepted');
  }
  if (withBody) await storage.appendUpload(uploadId, ctx.body);
  if (!(await storage.commitUpload(uploadId, hex)))
    throw new RegistryError('DIGEST_INVALID', 'the uploaded content does not match the digest');
  await storage.link(name, hex);
  return reply
    .status(201)
    .headers({ location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': '0' })
    .send();
}

/** GET/HEAD (with Range) and DELETE of a blob the repository holds. */
export async function handleBlob(ctx: HandlerContext, name: string, digest: string): Promise<unknown> {
  const { storage, request, reply } = ctx;
  const hex = digestHex(digest);
  if (!hex) throw new RegistryError('DIGEST_INVALID', 'only sha256 digests are accepted');
  const size = (await storage.isLinked(name, hex)) ? await storage.blobSize(hex) : undefined;
  if (request.method === 'DELETE') {
    if (!(await storage.unlink(name, hex)))
      throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
    return reply.status(202).header('content-length', '0').send();
  }
  if (request.method !== 'GET' && request.method !== 'HEAD')
    throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`);
  if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
  void reply.headers({
    'docker-content-digest': digest,
    'content-type': 'application/octet-stream',
    'accept-ranges': 'bytes',
    etag: `"${digest}"`,
  });
  const range = parseRange(request.headers.range, size);
  if (range === 'invalid')
    return reply
      .status(416)
      .header('content-range', `bytes */${size}`)
      .send(new RegistryError('RANGE_INVALID', 'unsatisfiable range').toBody());
  if (range) {
    void reply.status(206).headers({
      'content-range': `bytes ${range.start}-${range.end}/${size}`,
      'content-length': String(range.end - range.start + 1),
    });
    return request.method === 'HEAD' ? reply.send() : reply.send(storage.readBlob(hex, range));
  }
  void reply.header('content-length', String(size));
  return request.method === 'HEAD' ? reply.send() : reply.send(storage.readBlob(hex));
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n` range; multi-ranges are served whole (allowed by RFC 9110). */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | 'invalid' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return 'invalid';
  let start: number;
  let end: number;
  if (a === '') {
    start = Math.max(size - Number(b), 0);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  }
  if (start > end || start >= size) return 'invalid';
  return { start, end };
}
