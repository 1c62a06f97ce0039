import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The agent's HTTP client: one request, its whole answer buffered. Built on node:http(s) and not on `fetch`,
 * because fetch loads undici and compiles its WebAssembly HTTP parser, which costs the device about 10 MB of
 * resident memory for nothing node:http does not already do (bench/agent.mjs measures the agent's footprint).
 */
export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface HttpInit {
  method: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  signal?: AbortSignal;
  /** The socket may stay silent this long before the request fails. */
  idleTimeoutMs: number;
  /** Answers above this size fail instead of filling memory. */
  maxBodyBytes: number;
  /** CAs to verify an https:// server with (util/trust.ts); absent: Node's roots. */
  ca?: string[] | undefined;
}

export function httpExchange(url: URL, init: HttpInit): Promise<HttpAnswer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method: init.method,
      headers: {
        ...init.headers,
        ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }),
      },
      signal: init.signal,
      timeout: init.idleTimeoutMs,
      ...(init.ca ? { ca: init.ca } : {}),
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${init.idleTimeoutMs} ms`)));
    req.on('error', reject);
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > init.maxBodyBytes) {
          req.destroy(new Error(`answer larger than ${init.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on('error', reject);
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.end(init.body);
  });
}
