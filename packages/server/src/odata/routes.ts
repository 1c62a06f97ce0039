import { FlotillaError, ODATA_ROUTES } from '@flotilla/protocol';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../context.js';
import { FIND_SELF_FILTER, findSelf } from '../device-api/find-self.js';
import type { Caller } from './caller.js';
import { type Expr, parseQueryOptions } from './parser.js';
import { countEntities, readEntities } from './read.js';
import { type ResourcePath, parseResourcePath } from './resource-path.js';
import { RESOURCES } from './resources.js';
import { callerOf } from './who.js';
import { registerActorRoutes } from './actor-routes.js';
import { createEntity, deleteEntities, updateEntities } from './write.js';

function keyFilter(path: ResourcePath, filter: Expr | undefined): Expr | undefined {
  if (!path.key) return filter;
  const key: Expr = {
    kind: 'compare',
    op: 'eq',
    left: { kind: 'path', path: [path.key.field] },
    right: { kind: 'literal', value: path.key.value },
  };
  return filter ? { kind: 'and', left: key, right: filter } : key;
}

const rest = (request: FastifyRequest): string => (request.params as { '*': string })['*'];
const query = (request: FastifyRequest): Record<string, unknown> => request.query as Record<string, unknown>;

/** PATCH and DELETE answer as balena's API does: 200 and a plain `OK`. */
function ok(reply: FastifyReply): FastifyReply {
  return reply.status(200).type('text/plain; charset=utf-8').send('OK');
}

function requireCaller(caller: Caller | undefined): Caller {
  if (!caller) throw new FlotillaError('UNAUTHENTICATED', 'invalid or expired key');
  return caller;
}

/** The balena-compatible OData layer (see packages/server/README.md for what is served and what is not). */
export function registerODataRoutes(app: FastifyInstance, ctx: AppContext): void {
  const { db } = ctx;
  registerActorRoutes(app, ctx);

  const read = async (request: FastifyRequest) => {
    const { caller, key } = await callerOf(db, request);
    const path = parseResourcePath(rest(request));
    if (!caller) {
      // A provisioning key may ask one question: the id of a device of its fleet, by UUID (balena-register-device).
      const filter = query(request).$filter;
      const match = typeof filter === 'string' ? FIND_SELF_FILTER.exec(filter) : null;
      if (path.name === 'device' && !path.key && !path.count && match?.[1]) return findSelf(db, match[1], key);
      throw new FlotillaError('UNAUTHENTICATED', 'invalid or expired key');
    }
    const options = parseQueryOptions(query(request));
    const filter = keyFilter(path, options.filter);
    const resource = RESOURCES[path.name];
    if (path.count) return { d: await countEntities(db, caller, resource, { ...options, filter }) };
    const filtered = filter ? { ...options, filter } : options;
    return { d: await readEntities(db, caller, resource, filtered) };
  };
  app.get(ODATA_ROUTES.read.path, read);
  app.get(ODATA_ROUTES.readV6.path, read);

  const create = async (request: FastifyRequest, reply: FastifyReply) => {
    const caller = requireCaller((await callerOf(db, request)).caller);
    const path = parseResourcePath(rest(request));
    if (path.key || path.count) throw new FlotillaError('VALIDATION_FAILED', 'POST to the collection: /v7/<resource>');
    const created = await createEntity(db, caller, path.name, request.body);
    const [entity] = await readEntities(db, caller, RESOURCES[path.name], { filter: created });
    return reply.status(201).send(entity);
  };
  app.post(ODATA_ROUTES.create.path, create);
  app.post(ODATA_ROUTES.createV6.path, create);

  const update = async (request: FastifyRequest, reply: FastifyReply) => {
    const caller = requireCaller((await callerOf(db, request)).caller);
    const path = parseResourcePath(rest(request));
    const options = parseQueryOptions(query(request));
    await updateEntities(ctx, caller, path.name, keyFilter(path, options.filter), request.body);
    return ok(reply);
  };
  app.patch(ODATA_ROUTES.update.path, update);
  app.patch(ODATA_ROUTES.updateV6.path, update);

  const remove = async (request: FastifyRequest, reply: FastifyReply) => {
    const caller = requireCaller((await callerOf(db, request)).caller);
    const path = parseResourcePath(rest(request));
    const options = parseQueryOptions(query(request));
    await deleteEntities(db, caller, path.name, keyFilter(path, options.filter));
    return ok(reply);
  };
  app.delete(ODATA_ROUTES.remove.path, remove);
  app.delete(ODATA_ROUTES.removeV6.path, remove);
}
