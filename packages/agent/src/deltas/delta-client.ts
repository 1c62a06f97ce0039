import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import {
  DEVICE_ROUTES,
  type DeltaAnswer,
  type DeltaOutcome,
  FlotillaError,
  deltaAnswerSchema,
  isErrorBody,
  path,
} from '@flotilla/protocol';
import { httpExchange } from '../util/http.js';

const IDLE_TIMEOUT_MS = 30_000;
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;

export interface DeltaEndpoint {
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts). */
  ca?: string[] | undefined;
}

function failure(status: number, body: Buffer, what: string): FlotillaError {
  let detail = '';
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (isErrorBody(parsed)) {
      if (parsed.error.code === 'DELTA_UNAVAILABLE' || parsed.error.code === 'IMAGE_NOT_FOUND')
        return new FlotillaError(parsed.error.code, parsed.error.message);
      detail = `: ${parsed.error.message} (${parsed.error.code})`;
    }
  } catch {
    // not JSON: the status says enough
  }
  return new FlotillaError('UNEXPECTED_RESPONSE', `${what} failed with HTTP ${status}${detail}`);
}

/** One ask for the delta between two images of the fleet (DEVICE_ROUTES.deltaRequest). */
export async function askDelta(
  endpoint: DeltaEndpoint,
  fromImageId: number,
  toImageId: number,
  signal: AbortSignal,
): Promise<DeltaAnswer> {
  const answer = await httpExchange(
    new URL(path(DEVICE_ROUTES.deltaRequest.path, { uuid: endpoint.uuid }), endpoint.apiEndpoint),
    {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ fromImageId, toImageId }),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxBodyBytes: MAX_ANSWER_BYTES,
      ca: endpoint.ca,
    },
  );
  if (answer.status !== 200 && answer.status !== 202) throw failure(answer.status, answer.body, 'asking for a delta');
  return deltaAnswerSchema.parse(JSON.parse(answer.body.toString('utf8')));
}

/** Tells the server what became of a delta; best effort (the caller logs a failure). */
export async function reportOutcome(
  endpoint: DeltaEndpoint,
  outcome: DeltaOutcome,
  signal: AbortSignal,
): Promise<void> {
  const answer = await httpExchange(
    new URL(path(DEVICE_ROUTES.deltaOutcome.path, { uuid: endpoint.uuid }), endpoint.apiEndpoint),
    {
      method: 'POST',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(outcome),
      signal,
      idleTimeoutMs: IDLE_TIMEOUT_MS,
      maxBodyBytes: MAX_ANSWER_BYTES,
      ca: endpoint.ca,
    },
  );
  if (answer.status !== 204) throw failure(answer.status, answer.body, 'reporting a delta outcome');
}

/**
 * Downloads `downloadPath` into `file`, resuming from the bytes already there (a cut link, an agent restart): asks
 * `Range: bytes=<size on disk>-` and appends. Resolves the bytes this call received over the network.
 * INVARIANT: bytes are only ever appended at the offset the server's Content-Range names, so the file is always a
 * prefix of the delta; the caller checks the whole file's sha256 before using it.
 */
export async function downloadDelta(
  endpoint: DeltaEndpoint,
  downloadPath: string,
  file: string,
  size: number,
  signal: AbortSignal,
): Promise<number> {
  const have = (await stat(file).catch(() => undefined))?.size ?? 0;
  if (have === size) return 0;
  if (have > size) throw new FlotillaError('DELTA_INVALID', `partial delta ${file} is larger than the delta`);
  const url = new URL(downloadPath, endpoint.apiEndpoint);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<number>((resolve, reject) => {
    const req = send(url, {
      method: 'GET',
      headers: { authorization: `Bearer ${endpoint.deviceApiKey}`, ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
      signal,
      timeout: IDLE_TIMEOUT_MS,
      ...(endpoint.ca ? { ca: endpoint.ca } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no bytes within ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (error) =>
      reject(signal.aborted ? error : new FlotillaError('NETWORK_ERROR', `delta download: ${error.message}`)),
    );
    req.on('response', (response) => {
      const status = response.statusCode ?? 0;
      const start = status === 206 ? Number(/^bytes (\d+)-/.exec(response.headers['content-range'] ?? '')?.[1]) : 0;
      if ((status !== 200 && status !== 206) || start !== (status === 206 ? have : 0)) {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.length < 64 && chunks.push(chunk));
        response.on('end', () => reject(failure(status, Buffer.concat(chunks), 'delta download')));
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
      let failed: unknown;
      response.on('data', (chunk: Buffer) => {
        if (failed) return;
        try {
          writeSync(fd, chunk);
          received += chunk.length;
        } catch (error) {
          failed = error;
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
              : new FlotillaError('NETWORK_ERROR', 'delta download cut before its end; the next try resumes'),
          );
      });
    });
    req.end();
  });
}
