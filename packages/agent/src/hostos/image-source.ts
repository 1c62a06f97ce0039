import { createReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { FlotillaError } from '@flotilla/protocol';

const IDLE_TIMEOUT_MS = 30_000;

/** An OS image's bytes from `start` to its end. */
export interface ImageBytes {
  stream: Readable;
  /** Where the first byte is in the image: the `from` asked for, or 0 when the source cannot start there. */
  start: number;
}

/**
 * Where the updater reads an OS image from, starting at byte `from` (default 0: a write resumed after a restart asks
 * for the rest); injected so tests and benches can throttle or cut it.
 */
export type OpenImage = (url: string, signal: AbortSignal, from?: number) => Promise<ImageBytes>;

/**
 * file: → the file from `from`; http(s): → the answer's body (200, or 206 from `from` when a range was asked; the
 * socket may stay silent IDLE_TIMEOUT_MS). The digest is checked by the slot writer, not here: this only moves bytes.
 */
export const openImage: OpenImage = (url, signal, from = 0) => {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:')
    return Promise.resolve({ stream: createReadStream(fileURLToPath(parsed), { signal, start: from }), start: from });
  const send = parsed.protocol === 'https:' ? httpsRequest : parsed.protocol === 'http:' ? httpRequest : undefined;
  if (!send)
    return Promise.reject(new FlotillaError('VALIDATION_FAILED', `cannot read an OS image from ${parsed.protocol}`));
  return new Promise((resolve, reject) => {
    const req = send(parsed, {
      method: 'GET',
      signal,
      timeout: IDLE_TIMEOUT_MS,
      ...(from > 0 ? { headers: { range: `bytes=${from}-` } } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no bytes within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (error) => reject(new FlotillaError('NETWORK_ERROR', `OS image ${parsed.host}: ${error.message}`)));
    req.on('response', (response) => {
      // A server that ignores Range answers 200 with the whole image: taken, and the writer starts over.
      if (response.statusCode === 200) return resolve({ stream: response, start: 0 });
      const range = /^bytes (\d+)-/.exec(String(response.headers['content-range'] ?? ''));
      if (from > 0 && response.statusCode === 206 && Number(range?.[1]) === from)
        return resolve({ stream: response, start: from });
      response.resume();
      reject(new FlotillaError('UNEXPECTED_RESPONSE', `OS image ${parsed.host} answered ${response.statusCode}`));
    });
    req.end();
  });
};
