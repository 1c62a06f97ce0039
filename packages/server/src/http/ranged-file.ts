import { FlotillaError } from '@flotilla/protocol';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { parseRange } from '../registry/blob-routes.js';

/**
 * Answers a download devices resume with Range (deltas, OS images): 200 whole, 206 for a range, 416 with the size
 * and a JSON error for one past the end. `read` opens the bytes, all of them or the range.
 */
export function sendRanged(
  request: FastifyRequest,
  reply: FastifyReply,
  file: { size: number; etag: string; read: (range?: { start: number; end: number }) => Readable },
): FastifyReply {
  const { size } = file;
  void reply.headers({ 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: file.etag });
  const range = parseRange(request.headers.range, size);
  if (range === 'invalid')
    // Serialized here: the octet-stream type set above would make Fastify refuse to send an object (a 500).
    return reply
      .status(416)
      .headers({ 'content-range': `bytes */${size}`, 'content-type': 'application/json; charset=utf-8' })
      .send(JSON.stringify(new FlotillaError('VALIDATION_FAILED', 'unsatisfiable range').toBody()));
  if (range) {
    void reply.status(206).headers({
      'content-range': `bytes ${range.start}-${range.end}/${size}`,
      'content-length': String(range.end - range.start + 1),
    });
    return reply.send(file.read(range));
  }
  void reply.header('content-length', String(size));
  return reply.send(file.read());
}
