import { API_PREFIX, FlotillaError, isErrorBody } from '@flotilla/protocol';

/**
 * A thin client for /api/v1. Every failure becomes a FlotillaError carrying the server's code, so commands print
 * `error: <message> (<CODE>)` whatever went wrong, including a server that is down.
 */
export class ApiClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    private readonly token?: string,
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
  }

  get<T>(path: string, query?: Record<string, string | undefined>): Promise<T> {
    return this.request<T>('GET', path, undefined, query);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body ?? {});
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  delete(path: string, query?: Record<string, string | undefined>): Promise<unknown> {
    return this.request('DELETE', path, undefined, query);
  }

  /**
   * Opens a long-lived GET (Server-Sent Events) and yields each event's `data` for events of type `event`.
   * Ends when the server closes the stream or `signal` aborts.
   */
  async *events(
    path: string,
    event: string,
    query: Record<string, string | undefined>,
    signal: AbortSignal,
  ): AsyncGenerator<string> {
    const url = new URL(`${this.baseUrl}${API_PREFIX}${path}`);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let response: Response;
    try {
      response = await fetch(url, { headers, signal });
    } catch (error) {
      if (signal.aborted) return;
      throw unreachable(this.baseUrl, error);
    }
    if (!response.ok || !response.body) throw failure('GET', url, response.status, await response.text());
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let type = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('event:')) type = line.slice(6).trim();
            else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
          }
          if (type === event && data.length) yield data.join('\n');
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      throw new FlotillaError(
        'NETWORK_ERROR',
        `the log stream broke: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string | undefined>,
  ): Promise<T> {
    const url = new URL(`${this.baseUrl}${API_PREFIX}${path}`);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (error) {
      throw unreachable(this.baseUrl, error);
    }
    const text = await response.text();
    if (!response.ok) throw failure(method, url, response.status, text);
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return parsed as T;
  }
}

/** A non-2xx answer as a FlotillaError: the server's own code and message when it sent them. */
function failure(method: string, url: URL, status: number, text: string): FlotillaError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (isErrorBody(parsed))
    return new FlotillaError(parsed.error.code, parsed.error.message, { details: parsed.error.details });
  return new FlotillaError(
    status === 404 ? 'NOT_FOUND' : 'INTERNAL',
    `${method} ${url.pathname} failed with HTTP ${status}`,
  );
}

/** The server could not be reached at all (refused, DNS, timeout): the innermost reason is the useful one. */
function unreachable(baseUrl: string, error: unknown): FlotillaError {
  const reason =
    error instanceof Error && error.cause instanceof Error
      ? error.cause.message
      : error instanceof Error
        ? error.message
        : String(error);
  return new FlotillaError('NETWORK_ERROR', `cannot reach ${baseUrl}: ${reason}`, { cause: error });
}
