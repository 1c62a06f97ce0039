import type { IncomingMessage } from 'node:http';
import { FlotillaError, isErrorBody, isErrorCode, path } from '@flotilla/protocol';
import type { StreamControl, UserRoute } from '@flotilla/protocol';
import WebSocket from 'ws';
import { trustedCas } from '../credentials/trust.js';

/** Where and as whom a stream is opened: the same base URL and token every other command uses. */
export interface StreamEndpoint {
  /** Server URL without /api/v1 (the `url` of the stored credentials). */
  apiUrl: string;
  token: string;
  /** PEM CA of a server with its own CA (credentials/trust.ts). */
  ca?: string | undefined;
}

/** Long enough for a relay that waits for the device to dial back; bounded so a dead server does not hang us. */
const HANDSHAKE_TIMEOUT_MS = 30_000;
/** An error body is a few hundred bytes; more is not one of ours. */
const MAX_ERROR_BODY = 64 * 1024;
const ERROR_BODY_TIMEOUT_MS = 5_000;

/** `http(s)://host[/prefix]` + the route path with `:uuid` filled, as `ws(s)://…`, with the defined query params. */
export function streamUrl(
  apiUrl: string,
  route: UserRoute,
  uuid: string,
  query: Record<string, string | number | undefined>,
): string {
  const url = new URL(`${apiUrl.replace(/\/+$/, '')}${path(route.path, { uuid })}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new FlotillaError('VALIDATION_FAILED', `the server URL ${apiUrl} is neither http nor https`);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
  return url.toString();
}

/**
 * Opens the WebSocket of one stream. Resolves once upgraded; rejects with a FlotillaError: the server's own code and
 * message when it refused the upgrade with an error body (403, 404, 409 …), NETWORK_ERROR when it cannot be reached
 * or `signal` aborted first.
 * INVARIANT: it resolves with the socket paused; the caller resumes it once its listeners are on. A first frame
 * (`ready`) that came in the same TCP read as the upgrade answer is emitted on the next tick, before a promise's
 * continuation runs, and would otherwise be lost.
 */
export function openStreamSocket(endpoint: StreamEndpoint, url: string, signal?: AbortSignal): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => fail(new FlotillaError('NETWORK_ERROR', 'the stream was abandoned before it opened'));
    const fail = (error: FlotillaError) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      ws.terminate();
      reject(error);
    };
    const ws = new WebSocket(url, {
      headers: { authorization: `Bearer ${endpoint.token}` },
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
      ...(endpoint.ca === undefined ? {} : { ca: trustedCas(endpoint.ca) }),
      // Shell and tunnel bytes are often compressed already; deflating them costs CPU for little.
      perMessageDeflate: false,
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    ws.on('unexpected-response', (_request, response) => {
      // A server that sends the status and then stalls must not hold us: the status alone will do.
      const timer = setTimeout(() => fail(refusal(url, response.statusCode ?? 0, '')), ERROR_BODY_TIMEOUT_MS);
      response.once('close', () => clearTimeout(timer));
      readErrorBody(response).then(
        (text) => fail(refusal(url, response.statusCode ?? 0, text)),
        () => fail(refusal(url, response.statusCode ?? 0, '')),
      );
    });
    ws.on('error', (error) => fail(unreachable(endpoint.apiUrl, error)));
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      ws.pause();
      resolve(ws);
    });
  });
}

function readErrorBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_ERROR_BODY) chunks.push(chunk);
    });
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}

/** An upgrade answered with an HTTP error: the server's code and message when it sent its error body. */
function refusal(url: string, status: number, text: string): FlotillaError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (isErrorBody(parsed)) return new FlotillaError(parsed.error.code, parsed.error.message);
  const where = new URL(url).pathname;
  return new FlotillaError(
    status === 404 ? 'NOT_FOUND' : 'UNEXPECTED_RESPONSE',
    `${where} refused the WebSocket with HTTP ${status}`,
  );
}

function unreachable(apiUrl: string, error: Error): FlotillaError {
  return new FlotillaError('NETWORK_ERROR', `cannot reach ${apiUrl}: ${error.message}`, { cause: error });
}

/**
 * The `error` control message as a FlotillaError. A code this CLI does not know (a newer server or agent) keeps its
 * text in the message rather than being lost.
 */
export function streamError(control: { code: string; message: string }): FlotillaError {
  return isErrorCode(control.code)
    ? new FlotillaError(control.code, control.message)
    : new FlotillaError('UNEXPECTED_RESPONSE', `${control.message} [${control.code}]`);
}

export function sendControl(ws: WebSocket, control: StreamControl): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(control));
}

/** How long a closing handshake may take before the connection is cut. */
const CLOSE_GRACE_MS = 2_000;

/**
 * Ends a stream with a normal close, and cuts it if the other side does not answer in time (a relay that went
 * silent, or a socket paused for back-pressure that would never read the answer).
 */
export function closeStream(ws: WebSocket): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.terminate();
    return;
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
  // The socket itself keeps the process alive while it is open; the timer must not once it closed.
  timer.unref();
  ws.once('close', () => clearTimeout(timer));
}
