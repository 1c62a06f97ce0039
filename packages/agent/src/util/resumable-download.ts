import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { FlotillaError } from '@flotilla/protocol';
import type { Logger } from 'pino';

const IDLE_TIMEOUT_MS = 30_000;

export interface ResumableDownload {
  url: URL;
  /** Asked again before every attempt (a registry token may have expired meanwhile). */
  headers: () => Promise<Record<string, string>> | Record<string, string>;
  /** Where the bytes go; a file already there is the prefix a previous attempt (or agent run) received. */
  file: string;
  /** The whole download's size: a longer file is refused, a file of this size is complete. */
  size: number;
  /** For messages: `delta download`, `layer sha256:… download`. */
  what: string;
  /** The error for an answer that is neither 200 nor the 206 asked for (its status and first bytes). */
  failure: (status: number, body: Buffer) => Error;
  /** The file's size after each chunk written (progress). */
  onBytes?: ((bytesOnDisk: number) => void) | undefined;
  signal: AbortSignal;
  /** Roots trusted besides the public ones (config.json's balenaRootCA), for a server with its own CA. */
  ca?: string[] | undefined;
}

async function sizeOf(file: string): Promise<number> {
  return (await stat(file).catch(() => undefined))?.size ?? 0;
}

/**
 * One attempt: downloads `url` into `file`, resuming from the bytes already there: asks `Range: bytes=<size on
 * disk>-` and appends. Resolves the bytes this call received over the network; a cut link rejects NETWORK_ERROR
 * with every byte received kept on disk.
 * INVARIANT: bytes are only ever appended at the offset the server's Content-Range names, so the file is always a
 * prefix of the download; the caller checks the whole file's digest before using it.
 */
export async function downloadOnce(d: ResumableDownload): Promise<number> {
  const { signal, file } = d;
  const have = await sizeOf(file);
  if (have === d.size) return 0;
  if (have > d.size)
    throw new FlotillaError('UNEXPECTED_RESPONSE', `partial ${d.what} ${file} is larger than the download`);
  const headers = await d.headers();
  const send = d.url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<number>((resolve, reject) => {
    const req = send(d.url, {
      method: 'GET',
      headers: { ...headers, ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
      signal,
      timeout: IDLE_TIMEOUT_MS,
      ...(d.ca ? { ca: d.ca } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no bytes within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (error) =>
      reject(signal.aborted ? error : new FlotillaError('NETWORK_ERROR', `${d.what}: ${error.message}`)),
    );
    req.on('response', (response) => {
      const status = response.statusCode ?? 0;
      const start = status === 206 ? Number(/^bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1]) : 0;
      if ((status !== 200 && status !== 206) || start !== (status === 206 ? have : 0)) {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.length < 64 && chunks.push(chunk));
        response.on('end', () => reject(d.failure(status, Buffer.concat(chunks))));
        response.on('error', reject);
        return;
      }
      // WARNING: written synchronously as each chunk arrives, never piped: a paused response holds chunks in its own
      // buffer, and a cut link destroys the response with them, so the next try would download them again.
      // A 200 (the server ignored the range) starts the file over; a 206 appends where the file ends.
      let fd: number;
      try {
        fd = openSync(file, status === 206 ? 'a' : 'w');
      } catch (error) {
        response.destroy();
        reject(error);
        return;
      }
      let received = 0;
      let onDisk = status === 206 ? have : 0;
      let failed: unknown;
      response.on('data', (chunk: Buffer) => {
        if (failed) return;
        try {
          writeSync(fd, chunk);
          received += chunk.length;
          onDisk += chunk.length;
          d.onBytes?.(onDisk);
        } catch (error) {
          failed =
            (error as NodeJS.ErrnoException).code === 'ENOSPC'
              ? new FlotillaError(
                  'INSUFFICIENT_DISK',
                  `no space left for the ${d.what} in ${file}; the running release is kept`,
                )
              : error;
          response.destroy();
        }
      });
      response.on('error', () => undefined);
      response.on('close', () => {
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        if (failed) reject(failed);
        else if (response.complete) resolve(received);
        else
          reject(
            signal.aborted
              ? signal.reason
              : new FlotillaError('NETWORK_ERROR', `${d.what} cut before its end; the next try resumes`),
          );
      });
    });
    req.end();
  });
}

/**
 * Downloads with resume, retrying a cut link: `attempts` attempts in a row that receive nothing end it (an attempt
 * that received bytes starts the count and the back-off over, so a link that keeps dropping but makes progress
 * finishes). Resolves the bytes received over the network by this call; rejects the last attempt's error.
 */
export async function downloadResuming(d: ResumableDownload, attempts: number, log: Logger): Promise<number> {
  let received = 0;
  for (let fruitless = 1; ; fruitless += 1) {
    const before = await sizeOf(d.file);
    if (before > 0 && before < d.size) log.info({ file: d.file, bytes: before }, `resuming a ${d.what}`);
    try {
      received += await downloadOnce(d);
      return received;
    } catch (error) {
      const gained = Math.max(0, (await sizeOf(d.file)) - before);
      received += gained;
      if (gained > 0) fruitless = 1;
      const cut = error instanceof FlotillaError && error.code === 'NETWORK_ERROR';
      if (d.signal.aborted || !cut || fruitless >= attempts) throw error;
      log.warn({ err: error, attempt: fruitless }, `${d.what} cut; resuming`);
      await sleep(Math.min(10_000, 250 * 2 ** fruitless), undefined, { signal: d.signal });
    }
  }
}
