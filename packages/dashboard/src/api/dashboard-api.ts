import {
  CSRF_HEADER,
  FlotillaError,
  type FetchAnswer,
  type FetchLike,
  type InputArgs,
  type RouteResponse,
  type UserRoute,
  createApiClient,
} from '@flotilla/protocol';

/** The part of the browser's `fetch` the dashboard uses (a test passes its own). */
export type BrowserFetch = (url: string, init: RequestInit) => Promise<FetchAnswer>;

export interface DashboardApi {
  call<R extends UserRoute>(route: R, ...input: InputArgs<R>): Promise<RouteResponse<R>>;
  /** The CSRF token of the cookie session, from sign-in or `GET /auth/csrf`; null once signed out. */
  setCsrfToken(token: string | null): void;
}

export interface DashboardApiOptions {
  /** The page's own origin: the dashboard only ever talks to the server that served it. */
  baseUrl: string;
  fetch: BrowserFetch;
  /** The session is gone (expired, signed out elsewhere, server restarted with a new secret): show the sign-in page. */
  onUnauthenticated: () => void;
}

/**
 * The protocol's typed client over the browser's cookie session: credentials are the HttpOnly cookie the browser
 * sends by itself (same origin only), never a token the page could leak.
 * INVARIANT: every request with a method other than GET/HEAD carries CSRF_HEADER with the session's token; the
 * server refuses a cookie-authenticated write without it, which is what stops a cross-site form from acting.
 */
export function createDashboardApi(options: DashboardApiOptions): DashboardApi {
  let csrfToken: string | null = null;
  const fetchWithCookie: FetchLike = (url, init) => {
    const headers: Record<string, string> = { ...init.headers };
    if (init.method !== 'GET' && init.method !== 'HEAD' && csrfToken !== null) headers[CSRF_HEADER] = csrfToken;
    return options.fetch(url, {
      method: init.method,
      headers,
      body: init.body,
      signal: init.signal,
      credentials: 'same-origin',
    });
  };
  const client = createApiClient({ baseUrl: options.baseUrl, fetch: fetchWithCookie });
  return {
    async call<R extends UserRoute>(route: R, ...input: InputArgs<R>): Promise<RouteResponse<R>> {
      try {
        return await client.call(route, ...input);
      } catch (error) {
        if (error instanceof FlotillaError && error.code === 'UNAUTHENTICATED') options.onUnauthenticated();
        throw error;
      }
    },
    setCsrfToken(token) {
      csrfToken = token;
    },
  };
}

/** What a person reads when a call fails: the server's message and its stable code, never a stack. */
export function describeError(error: unknown): string {
  if (error instanceof FlotillaError) return `${error.message} (${error.code})`;
  if (error instanceof Error) return error.message;
  return String(error);
}
