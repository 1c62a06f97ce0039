import { createApiClient } from '@flotilla/protocol';
import type {
  ApiClient as TypedClient,
  FetchLike,
  InputArgs,
  RouteInput,
  RouteResponse,
  UserRoute,
} from '@flotilla/protocol';
import type { z } from 'zod';

/**
 * The CLI's client of /api/v1: every call names a USER_ROUTES entry, `call(USER_ROUTES.getFleet, { params })`, and
 * gets the answer validated with the entry's response schema. The work is done by `createApiClient` in
 * @flotilla/protocol (fetch only, no node modules), so the dashboard uses the same client.
 * INVARIANT: every failure is a FlotillaError with a stable code (the server's, NETWORK_ERROR or
 * UNEXPECTED_RESPONSE), so commands print `error: <message> (<CODE>)` whatever went wrong.
 */
export class ApiClient {
  readonly baseUrl: string;
  private readonly client: TypedClient;

  constructor(baseUrl: string, token?: string, fetch?: FetchLike) {
    this.client = createApiClient({ baseUrl, token, ...(fetch ? { fetch } : {}) });
    this.baseUrl = this.client.baseUrl;
  }

  call<R extends UserRoute>(route: R, ...input: InputArgs<R>): Promise<RouteResponse<R>> {
    return this.client.call(route, ...input);
  }

  /** Server-Sent Events of `route` of type `event`, each validated with `schema`, until the stream or `signal` ends. */
  events<R extends UserRoute, T extends z.ZodType>(
    route: R,
    input: RouteInput<R>,
    event: string,
    schema: T,
    signal: AbortSignal,
  ): AsyncGenerator<z.output<T>> {
    return this.client.events(route, input, event, schema, signal);
  }
}
