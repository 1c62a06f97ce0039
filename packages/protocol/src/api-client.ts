import type { z } from 'zod';
import { FlotillaError, isErrorBody } from './errors.js';
import { path } from './routes.js';
import type { RouteInput, RouteResponse, UserRoute } from './user-routes.js';

/**
 * The typed client of the user API: `client.call(USER_ROUTES.getFleet, { params: { slug } })` fills the path,
 * sends the body, and validates the answer with the route's response schema. It needs only `fetch` (passed in,
 * global by default), so the CLI and a browser dashboard share it.
 *
 * INVARIANT: every failure is a FlotillaError with a stable code: the server's own code for an error answer,
 * NETWORK_ERROR when the server cannot be reached, UNEXPECTED_RESPONSE when a 2xx answer does not match the
 * protocol schema (a server of another version). Callers never see a raw TypeError or ZodError.
 */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string | null; signal: AbortSignal | null },
) => Promise<FetchAnswer>;

/** The part of a fetch Response the client reads; `body` only for event streams. */
export interface FetchAnswer {
  readonly ok: boolean;
  readonly status: number;
  text(): Promise<string>;
  /** A byte stream to iterate (`for await`); read only for event streams. */
  readonly body: unknown;
}

export interface ApiClientOptions {
  /** Server URL without /api/v1, e.g. `https://flotilla.example.com`. */
  baseUrl: string;
  /** API key or session token, sent as Bearer. */
  token?: string | undefined;
  fetch?: FetchLike;
  /** Per-call timeout (default 60 s); event streams have none. */
  timeoutMs?: number;
}

/** Callers may omit the input of routes that need none. */
export type InputArgs<R extends UserRoute> =
  object extends RouteInput<R> ? [input?: RouteInput<R>] : [input: RouteInput<R>];

export interface ApiClient {
  readonly baseUrl: string;
  call<R extends UserRoute>(route: R, ...input: InputArgs<R>): Promise<RouteResponse<R>>;
  /**
   * Opens a long-lived GET answered with Server-Sent Events and yields each event of type `event`, its data
   * validated with `schema`. Ends when the server closes the stream or `signal` aborts.
   */
  events<R extends UserRoute, T extends z.ZodType>(
    route: R,
    input: RouteInput<R>,
    event: string,
    schema: T,
    signal: AbortSignal,
  ): AsyncGenerator<z.output<T>>;
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const doFetch: FetchLike = options.fetch ?? ((url, init) => fetch(url, init));
  const timeoutMs = options.timeoutMs ?? 60_000;
  const headers = (accept: string, withBody: boolean): Record<string, string> => ({
    accept,
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
    ...(withBody ? { 'content-type': 'application/json' } : {}),
  });
  const urlOf = (route: UserRoute, input: RouteInput<UserRoute> | undefined): string => {
    const url = new URL(`${baseUrl}${path(route.path, (input?.params ?? {}) as Record<string, string | number>)}`);
    const query = (input?.query ?? {}) as Record<string, string | number | boolean | undefined>;
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    return url.toString();
  };
  const send = async (url: string, init: Parameters<FetchLike>[1]): Promise<FetchAnswer> => {
    try {
      return await doFetch(url, init);
    } catch (error) {
      if (init.signal?.aborted && (error as { name?: string }).name === 'AbortError') throw error;
      throw unreachable(baseUrl, error);
    }
  };

  return {
    baseUrl,
    async call<R extends UserRoute>(route: R, ...args: InputArgs<R>): Promise<RouteResponse<R>> {
      const input = args[0] as RouteInput<UserRoute> | undefined;
      const url = urlOf(route, input);
      const hasBody = route.body !== undefined;
      const answer = await send(url, {
        method: route.method,
        headers: headers('application/json', hasBody),
        body: hasBody ? JSON.stringify(input?.body ?? {}) : null,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await answer.text();
      if (!answer.ok) throw failure(route.method, url, answer.status, text);
      if (!route.response) return undefined as RouteResponse<R>;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new FlotillaError('UNEXPECTED_RESPONSE', `${route.method} ${pathOf(url)} answered with no JSON body`);
      }
      const parsed = route.response.safeParse(json);
      if (!parsed.success) throw unexpected(route.method, url, parsed.error);
      return parsed.data as RouteResponse<R>;
    },

    async *events<R extends UserRoute, T extends z.ZodType>(
      route: R,
      input: RouteInput<R>,
      event: string,
      schema: T,
      signal: AbortSignal,
    ): AsyncGenerator<z.output<T>> {
      const url = urlOf(route, input as RouteInput<UserRoute>);
      let answer: FetchAnswer;
      try {
        answer = await send(url, {
          method: route.method,
          headers: headers('text/event-stream', false),
          body: null,
          signal,
        });
      } catch (error) {
        if (signal.aborted) return;
        throw error;
      }
      if (!answer.ok || !answer.body) throw failure(route.method, url, answer.status, await answer.text());
      const decoder = new TextDecoder();
      let buffer = '';
      try {
        for await (const chunk of answer.body as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf('\n\n');
          while (end !== -1) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
            let type = 'message';
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (type !== event || data.length === 0) continue;
            let json: unknown;
            try {
              json = JSON.parse(data.join('\n'));
            } catch {
              throw new FlotillaError('UNEXPECTED_RESPONSE', `an event of ${pathOf(url)} is not JSON`);
            }
            const parsed = schema.safeParse(json);
            if (!parsed.success) throw unexpected(route.method, url, parsed.error);
            yield parsed.data;
          }
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof FlotillaError) throw error;
        throw new FlotillaError(
          'NETWORK_ERROR',
          `the event stream broke: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    },
  };
}

function pathOf(url: string): string {
  return new URL(url).pathname;
}

/** A 2xx answer that does not match the protocol: which fields, not the whole body (it may hold a secret). */
function unexpected(method: string, url: string, error: z.ZodError): FlotillaError {
  const fields = error.issues.slice(0, 5).map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
  return new FlotillaError(
    'UNEXPECTED_RESPONSE',
    `${method} ${pathOf(url)} answered with a body this client does not understand (${fields.join('; ')})`,
    { details: { issues: fields } },
  );
}

/** A non-2xx answer as a FlotillaError: the server's own code and message when it sent them. */
function failure(method: string, url: string, status: number, text: string): FlotillaError {
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
    `${method} ${pathOf(url)} failed with HTTP ${status}`,
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
