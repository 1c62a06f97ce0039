import { createReadStream } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { FlotillaError } from '@flotilla/protocol';

const IDLE_TIMEOUT_MS = 30_000;

/** Where the updater reads an OS image from; injected so tests and benches can throttle or cut it. */
export type OpenImage = (url: string, signal: AbortSignal) => Promise<Readable>;

/**
 * file: → the file; http(s): → the answer's body (200 only; the socket may stay silent IDLE_TIMEOUT_MS). The digest
 * is checked by the slot writer, not here: this only moves bytes.
 */
export const openImage: OpenImage = (url, signal) => {
  const parsed = new URL(url);
  if (parsed.protocol === 'file:') return Promise.resolve(createReadStream(fileURLToPath(parsed), { signal }));
  const send = parsed.protocol === 'https:' ? httpsRequest : parsed.protocol === 'http:' ? httpRequest : undefined;
  if (!send)
    return Promise.reject(new FlotillaError('VALIDATION_FAILED', `cannot read an OS image from ${parsed.protocol}`));
  return new Promise((resolve, reject) => {
    const req = send(parsed, { method: 'GET', signal, timeout: IDLE_TIMEOUT_MS });
    req.on('timeout', () => req.destroy(new Error(`no bytes within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (error) => reject(new FlotillaError('NETWORK_ERROR', `OS image ${parsed.host}: ${error.message}`)));
    req.on('response', (response) => {
      if (response.statusCode === 200) return resolve(response);
      response.resume();
      reject(new FlotillaError('UNEXPECTED_RESPONSE', `OS image ${parsed.host} answered ${response.statusCode}`));
    });
    req.end();
  });
};
