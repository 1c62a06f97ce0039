import { API_PREFIX, FlotillaError, isErrorBody } from '@flotilla/protocol';

/**
 * A thin client for /api/v1. Every failure becomes a FlotillaError carrying the server's code, so commands print
 * `error: <message> (<CODE>)` whatever went wrong, including a server that is down.
 */
export class ApiClient {
  readonly baseUrl: string;

  constructor(baseUrl: string, private readonly token?: string) {
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

  async request<T>(method: string, path: string, body?: unknown, query?: Record<string, string | undefined>): Promise<T> {
    const url = new URL(`${this.baseUrl}${API_PREFIX}${path}`);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(url, { method, headers, body: body === undefined ? null : JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
    } catch (error) {
      const reason = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
      throw new FlotillaError('NETWORK_ERROR', `cannot reach ${this.baseUrl}: ${reason}`, { cause: error });
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      if (isErrorBody(parsed)) throw new FlotillaError(parsed.error.code, parsed.error.message, { details: parsed.error.details });
      throw new FlotillaError(response.status === 404 ? 'NOT_FOUND' : 'INTERNAL', `${method} ${url.pathname} failed with HTTP ${response.status}`);
    }
    return parsed as T;
  }
}
