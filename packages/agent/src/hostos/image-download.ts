import type { IncomingMessage } from 'node:http';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlotillaError } from '@flotilla/protocol';
import { openImage, type OpenImage } from './image-source.js';

const IDLE_TIMEOUT_MS = 30_000;

export interface ControlPlaneImageOptions {
  /** config.json's apiEndpoint: only URLs on its origin get the device key. */
  apiEndpoint: string;
  deviceApiKey: string;
  /** Roots trusted besides the public ones (config.json's balenaRootCA). */
  ca?: string[] | undefined;
  /** Cuts in a row without a byte in between before the download is given up (default 8). */
  maxStalls?: number;
  /** First wait before resuming, doubled on each stall in a row (default 1 s, at most 30 s). */
  retryDelayMs?: number;
}

/**
 * OS images from the control plane (target state `os.url`, DEVICE_ROUTES.osImage): sent with the device key, from
 * byte `from` (`Range: bytes=<from>-`: the slot writer resuming after a restart), and a cut link resumes with
 * `Range: bytes=<received>-` instead of starting over. The bytes reach the slot writer as one stream in order; it
 * checks the whole image's digest, so a server that resumed at a wrong place is caught there.
 * Other URLs (file:, another host) go to the plain `openImage`: the key is never sent anywhere else.
 */
export function controlPlaneImage(o: ControlPlaneImageOptions): OpenImage {
  const origin = new URL(o.apiEndpoint).origin;
  return async (url, signal, from = 0) => {
    const parsed = new URL(url);
    if (parsed.origin !== origin) return openImage(url, signal, from);
    const first = await get(parsed, from, o, signal, true);
    return { stream: Readable.from(resuming(parsed, first, o, signal)), start: first.start };
  };
}

async function* resuming(
  url: URL,
  first: Answer,
  o: ControlPlaneImageOptions,
  signal: AbortSignal,
): AsyncGenerator<Buffer> {
  const maxStalls = o.maxStalls ?? 8;
  const total = first.total;
  let response: IncomingMessage | undefined = first.response;
  let offset = first.start;
  let stalls = 0;
  for (;;) {
    let cut: Error | undefined;
    if (response) {
      const before = offset;
      try {
        for await (const chunk of response) {
          offset += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      } catch (error) {
        cut = error as Error;
      }
      if (offset > before) stalls = 0;
    }
    if (offset >= total) return;
    signal.throwIfAborted();
    stalls += 1;
    if (stalls > maxStalls)
      throw new FlotillaError(
        'NETWORK_ERROR',
        `OS image ${url.host}: cut ${maxStalls} times in a row at ${offset} of ${total} bytes${cut ? ` (${cut.message})` : ''}`,
      );
    await sleep(Math.min(30_000, (o.retryDelayMs ?? 1000) * 2 ** (stalls - 1)), undefined, { signal });
    response = await get(url, offset, o, signal).then(
      (answer) => (answer.total === total ? answer.response : Promise.reject(new Error('the image changed size'))),
      (error: unknown) => {
        // A refusal (the release is gone, the key changed) ends the download; a network failure is one more stall.
        if (error instanceof FlotillaError && error.code !== 'NETWORK_ERROR') throw error;
        return undefined;
      },
    );
  }
}

interface Answer {
  response: IncomingMessage;
  /** Where its body starts in the image. */
  start: number;
  /** The image's size. */
  total: number;
}

/**
 * One GET from `offset`: 200 from 0, else 206 starting exactly at `offset`; the image's total size with it. `whole`:
 * a 200 to a range is taken too (a server that ignores Range; the writer then starts over), which a resume after a
 * cut, in the middle of the stream, cannot take.
 */
function get(
  url: URL,
  offset: number,
  o: ControlPlaneImageOptions,
  signal: AbortSignal,
  whole = false,
): Promise<Answer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: 'GET',
      signal,
      timeout: IDLE_TIMEOUT_MS,
      headers: { authorization: `Bearer ${o.deviceApiKey}`, ...(offset > 0 ? { range: `bytes=${offset}-` } : {}) },
      ...(o.ca ? { ca: o.ca } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no bytes within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (error) =>
      reject(signal.aborted ? error : new FlotillaError('NETWORK_ERROR', `OS image ${url.host}: ${error.message}`)),
    );
    req.on('response', (response) => {
      const status = response.statusCode ?? 0;
      const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(String(response.headers['content-range'] ?? ''));
      if ((offset === 0 || whole) && status === 200) {
        const length = Number(response.headers['content-length']);
        if (Number.isSafeInteger(length)) return resolve({ response, start: 0, total: length });
      } else if (status === 206 && range && Number(range[1]) === offset)
        return resolve({ response, start: offset, total: Number(range[2]) });
      response.resume();
      reject(new FlotillaError('UNEXPECTED_RESPONSE', `OS image ${url.host} answered ${status} for bytes ${offset}-`));
    });
    req.end();
  });
}
