import { RegistryError } from './errors.js';
import type { HandlerContext } from './handler-context.js';
import { byteLimit, tooLarge, usageOf } from './limits.js';
import { digestHex } from './names.js';
import { newUploadId, uploadBelongsTo } from './uploads.js';

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function rangeHeader(size: number): string {
  // Distribution's convention: an empty upload reports "0-0".
  return `0-${Math.max(size - 1, 0)}`;
}

/**
 * POST starts (or, with ?digest=, completes; with a mountable `mountFrom` key, mounts), PATCH appends, PUT finishes,
 * GET reports, DELETE cancels. `mountFrom` is the storage key of the `from` repository, set only when the caller may
 * pull from it.
 */
export async function handleUploads(
  ctx: HandlerContext,
  uploadId: string | undefined,
  mountFrom: string | undefined,
): Promise<unknown> {
  const { storage, request, reply, query } = ctx;
  const { name, key } = ctx.repository;
  const method = request.method;
  if (uploadId === undefined) {
    if (method !== 'POST') throw new RegistryError('UNSUPPORTED', `${method} is not supported here`);
    const mount = query.get('mount');
    if (mount !== null && mountFrom !== undefined) {
      const hex = digestHex(mount);
      const size = hex === undefined ? undefined : await storage.blobSize(hex);
      if (hex && size !== undefined && (await storage.isLinked(mountFrom, hex))) {
        await checkQuota(ctx, size, hex);
        await storage.link(key, hex);
        return reply
          .status(201)
          .headers({ location: `/v2/${name}/blobs/${mount}`, 'docker-content-digest': mount, 'content-length': '0' })
          .send();
      }
      // Not mountable: fall through to a normal upload, as the spec requires.
    }
    const id = await storage.startUpload(newUploadId(ctx.signer, ctx.subject, key));
    const digest = query.get('digest');
    if (digest !== null) return finish(ctx, id, digest);
    return reply
      .status(202)
      .headers({ location: uploadLocation(name, id), 'docker-upload-uuid': id, range: '0-0', 'content-length': '0' })
      .send();
  }

  // INVARIANT: someone else's upload answers exactly like one that does not exist.
  const size = uploadBelongsTo(ctx.signer, uploadId, ctx.subject, key) ? await storage.uploadSize(uploadId) : undefined;
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
      const newSize = await appendLimited(ctx, uploadId, size);
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
      return finish(ctx, uploadId, digest);
    }
    default:
      throw new RegistryError('UNSUPPORTED', `${method} is not supported here`);
  }
}

/**
 * Appends the request body to the upload within the size limit and the quota. INVARIANT: past either, the whole
 * upload is discarded (no partial file stays) and the answer is 413.
 */
async function appendLimited(ctx: HandlerContext, uploadId: string, size: number): Promise<number> {
  const { maxUploadBytes, quotaBytes } = ctx.limits;
  let allowance = Number.POSITIVE_INFINITY;
  let refusal = (): RegistryError => tooLarge('SIZE_INVALID', 'unreachable');
  if (maxUploadBytes > 0) {
    allowance = maxUploadBytes - size;
    refusal = () => tooLarge('SIZE_INVALID', `a blob may not exceed ${maxUploadBytes} bytes on this registry`);
  }
  if (quotaBytes > 0) {
    const left = quotaBytes - (await usageOf(ctx.storage, await ctx.repository.quotaGroup())).bytes - size;
    if (left < allowance) {
      allowance = left;
      refusal = () => quotaExceeded(quotaBytes);
    }
  }
  const declared = Number(ctx.request.headers['content-length'] ?? Number.NaN);
  if (allowance < 0 || declared > allowance) {
    await ctx.storage.cancelUpload(uploadId);
    throw refusal();
  }
  if (allowance === Number.POSITIVE_INFINITY) return ctx.storage.appendUpload(uploadId, ctx.body);
  let exceeded = false;
  const limit = byteLimit(allowance, () => {
    exceeded = true;
    return refusal();
  });
  // pipe() carries neither the body's error nor its early close to the limiter when the client goes away; without
  // this the write would wait forever. (The body is not destroyed on a refusal, so the 413 can still be sent.)
  const { body } = ctx;
  const failed = (error: Error) => limit.destroy(error);
  const cutOff = () => {
    if (!body.readableEnded) limit.destroy(new Error('the client closed the request before its body ended'));
  };
  body.once('error', failed);
  body.once('close', cutOff);
  try {
    return await ctx.storage.appendUpload(uploadId, body.pipe(limit));
  } catch (error) {
    if (!exceeded) throw error;
    body.unpipe(limit);
    await ctx.storage.cancelUpload(uploadId);
    throw refusal();
  } finally {
    body.off('error', failed);
    body.off('close', cutOff);
  }
}

function quotaExceeded(quotaBytes: number): RegistryError {
  return tooLarge('DENIED', `the organization's registry storage quota (${quotaBytes} bytes) would be exceeded`);
}

/**
 * Refuses linking blob `hex` of `bytes` into the repository when its quota group does not hold it yet and it would
 * pass the quota.
 */
export async function checkQuota(ctx: HandlerContext, bytes: number, hex: string): Promise<void> {
  const { quotaBytes } = ctx.limits;
  if (quotaBytes <= 0) return;
  const usage = await usageOf(ctx.storage, await ctx.repository.quotaGroup());
  if (!usage.blobs.has(hex) && usage.bytes + bytes > quotaBytes) throw quotaExceeded(quotaBytes);
}

async function finish(ctx: HandlerContext, uploadId: string, digest: string): Promise<unknown> {
  const { storage, reply } = ctx;
  const { name, key } = ctx.repository;
  const hex = digestHex(digest);
  if (!hex) {
    await storage.cancelUpload(uploadId);
    throw new RegistryError('DIGEST_INVALID', 'only sha256 digests are accepted');
  }
  await appendLimited(ctx, uploadId, (await storage.uploadSize(uploadId)) ?? 0);
  if (!(await storage.commitUpload(uploadId, hex)))
    throw new RegistryError('DIGEST_INVALID', 'the uploaded content does not match the digest');
  await storage.link(key, hex);
  return reply
    .status(201)
    .headers({ location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': '0' })
    .send();
}

/** GET/HEAD (with Range) and DELETE of a blob the repository holds. */
export async function handleBlob(ctx: HandlerContext, digest: string): Promise<unknown> {
  const { storage, request, reply } = ctx;
  const { key } = ctx.repository;
  const hex = digestHex(digest);
  if (!hex) throw new RegistryError('DIGEST_INVALID', 'only sha256 digests are accepted');
  const size = (await storage.isLinked(key, hex)) ? await storage.blobSize(hex) : undefined;
  if (request.method === 'DELETE') {
    if (!(await storage.unlink(key, hex)))
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
