import type { RouteReply, UserRoute } from '@flotilla/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { FlotillaError } from '@flotilla/protocol';
import { asWriter, requireUser } from '../auth/principal.js';
import type { UserPrincipal } from '../auth/principal.js';
import type { Db } from '../db/database.js';
import { parse } from './parse.js';

type Parsed<R, K extends 'params' | 'query' | 'body'> = R extends { [P in K]: infer S extends z.ZodType }
  ? z.output<S>
  : undefined;

/** What a handler of a USER_ROUTES entry gets: the caller and the request parts, parsed with the entry's schemas. */
export interface RouteCall<R extends UserRoute> {
  user: R extends { auth: 'none' } ? undefined : UserPrincipal;
  params: Parsed<R, 'params'>;
  query: Parsed<R, 'query'>;
  body: Parsed<R, 'body'>;
  request: FastifyRequest;
  reply: FastifyReply;
}

/** Returned by a handler that took over the raw reply (reply.hijack(), e.g. an event stream). */
export const HIJACKED: unique symbol = Symbol('hijacked');

export type RouteHandler<R extends UserRoute> = (call: RouteCall<R>) => Promise<RouteReply<R> | typeof HIJACKED>;

/**
 * Registers one USER_ROUTES entry: its method and path, its success status, and its handler, whose answer must
 * match the entry's response schema at compile time (the answer is not re-validated at run time).
 * INVARIANT: the caller is authenticated before any request part is parsed, so a request without valid credentials
 * gets 401 whatever its parameters; then params, query and body are parsed (400 VALIDATION_FAILED) before the
 * handler looks anything up. An absent body is parsed as `{}`, so routes whose body fields are all optional take
 * none.
 * INVARIANT (read-only roles): a handler of any method but GET sees the caller only in the organizations where
 * their role may change things (asWriter), so no write route can act for an observer, whatever it looks up.
 */
export function serve<R extends UserRoute>(app: FastifyInstance, db: Db, route: R, handler: RouteHandler<R>): void {
  app.route({
    method: route.method,
    url: route.path,
    handler: async (request, reply) => {
      const caller = route.auth === 'none' ? undefined : await requireUser(db, request);
      const user = caller && route.method !== 'GET' ? asWriter(caller) : caller;
      const call = {
        user,
        params: route.params ? parse(route.params, request.params) : undefined,
        query: route.query ? parse(route.query, request.query) : undefined,
        body: route.body ? parse(route.body, request.body ?? {}) : undefined,
        request,
        reply,
      } as RouteCall<R>;
      let result: RouteReply<R> | typeof HIJACKED;
      try {
        result = await handler(call);
      } catch (error) {
        throw user !== caller ? observerHint(error) : error;
      }
      if (result === HIJACKED) return undefined;
      const status = route.status ?? 200;
      return status === 204 ? reply.status(204).send() : reply.status(status).send(result);
    },
  });
}

/** A write that found nothing because the caller only observes somewhere says so, instead of a bare "not found". */
function observerHint(error: unknown): unknown {
  if (!(error instanceof FlotillaError) || !error.code.endsWith('_NOT_FOUND')) return error;
  return new FlotillaError(
    error.code,
    `${error.message} among the organizations where you may change things (observers only read)`,
  );
}
