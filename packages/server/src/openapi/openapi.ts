import type { FastifyInstance } from 'fastify';
import * as p from '@flotilla/protocol';
import { ERROR_CODES, USER_ROUTES } from '@flotilla/protocol';
import type { UserRoute } from '@flotilla/protocol';
import { z } from 'zod';
import type { Db } from '../db/database.js';
import { serve } from '../http/serve.js';

/**
 * The device API, documented beside the user API. Its routes are not in USER_ROUTES (they are balena Supervisor
 * compatible and authenticated by device or provisioning keys), so their schemas are listed here.
 */
const DEVICE_DOCS: {
  route: { method: string; path: string };
  body?: z.ZodType;
  response?: z.ZodType;
  summary: string;
}[] = [
  {
    route: p.DEVICE_ROUTES.register,
    body: p.registerRequestSchema,
    response: p.registerResponseSchema,
    summary: 'Register a device (Bearer provisioning key)',
  },
  {
    route: p.DEVICE_ROUTES.findSelf,
    response: p.findSelfResponseSchema,
    summary:
      "Find a device id: $filter=uuid eq '<uuid>' (a provisioning key may ask only this; see the OData layer below)",
  },
  {
    route: { method: 'GET', path: '/v7/{resource}' },
    summary:
      'balena-compatible OData read: /v7/<resource>, /v7/<resource>(<key>), /v7/<resource>/$count with $filter, $select, $expand, $orderby, $top, $skip (packages/server/README.md)',
  },
  {
    route: { method: 'POST', path: '/v7/{resource}' },
    summary: 'OData create (variables, device tags): 201 with the entity',
  },
  {
    route: { method: 'PATCH', path: '/v7/{resource}' },
    summary: 'OData update by key or $filter (device, variables, tags)',
  },
  { route: { method: 'DELETE', path: '/v7/{resource}' }, summary: 'OData delete by key or $filter (variables, tags)' },
  { route: { method: 'GET', path: '/v6/{resource}' }, summary: 'OData read for older Supervisors (as /v7/)' },
  {
    route: p.ODATA_ROUTES.whoami,
    response: p.odataWhoamiSchema,
    summary: 'balena-sdk whoami: the actor behind the key',
  },
  { route: p.ODATA_ROUTES.config, summary: 'balena-sdk public configuration (empty)' },
  {
    route: p.DEVICE_ROUTES.keyExchange,
    body: p.keyExchangeRequestSchema,
    summary: 'Set a device key (Bearer provisioning key)',
  },
  {
    route: p.DEVICE_ROUTES.targetState,
    response: p.targetStateSchema,
    summary: 'Target state (Bearer device key; ETag / If-None-Match)',
  },
  {
    route: p.DEVICE_ROUTES.reportState,
    body: p.stateReportSchema,
    summary: 'Report current state (Bearer device key)',
  },
  { route: p.DEVICE_ROUTES.reportTags, body: p.tagsReportSchema, summary: 'Report device tags (Bearer device key)' },
  { route: p.DEVICE_ROUTES.logStream, summary: 'Stream log lines: gzip NDJSON (Bearer device key)' },
  { route: p.DEVICE_ROUTES.connect, summary: 'WebSocket for device actions (Bearer device key)' },
  { route: p.DEVICE_ROUTES.registryToken, summary: 'Registry token (Docker token auth)' },
  {
    route: p.DEVICE_ROUTES.osConfig,
    response: p.osConfigSchema,
    summary: "balenaOS os-config: its host services' files (no credentials)",
  },
  { route: p.DEVICE_ROUTES.ping, summary: 'Liveness: OK (no credentials)' },
  {
    route: p.DEVICE_ROUTES.deltaRequest,
    body: p.deltaRequestSchema,
    response: p.deltaAnswerSchema,
    summary: "Ask for a delta between two images of the device's fleet: ready, or 202 pending (Bearer device key)",
  },
  { route: p.DEVICE_ROUTES.deltaDownload, summary: 'Download a delta, with Range to resume (Bearer device key)' },
  {
    route: p.DEVICE_ROUTES.osImage,
    summary: "Download the raw slot image of the device's target OS, with Range to resume (Bearer device key)",
  },
  {
    route: p.DEVICE_ROUTES.deltaOutcome,
    body: p.deltaOutcomeSchema,
    summary: 'Report what became of a delta: applied or fallback, with bytes (Bearer device key)',
  },
  { route: { method: 'GET', path: '/healthz' }, summary: 'Health: database reachable, enough free disk' },
  { route: { method: 'GET', path: '/metrics' }, summary: 'Prometheus metrics' },
];

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): unknown {
  try {
    return z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  } catch {
    // Some schemas (transforms) have no JSON Schema form; documenting them as free-form beats failing.
    return {};
  }
}

const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string', enum: Object.keys(ERROR_CODES) },
        message: { type: 'string' },
        details: {},
      },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
};

/** One operation: path parameters, query, body, success answer and the shared error answer. */
function operation(
  route: Pick<UserRoute, 'path' | 'summary' | 'status' | 'query' | 'body' | 'response' | 'auth'>,
  operationId: string | undefined,
): unknown {
  const parameters: unknown[] = [...route.path.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  if (route.query) {
    const schema = jsonSchema(route.query, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, property] of Object.entries(schema.properties ?? {}))
      parameters.push({ name, in: 'query', required: schema.required?.includes(name) ?? false, schema: property });
  }
  const status = String(route.status ?? 200);
  return {
    ...(operationId ? { operationId } : {}),
    summary: route.summary,
    ...(route.auth === 'none' ? { security: [] } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body
      ? {
          requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } },
        }
      : {}),
    responses: {
      [status]: {
        description: status === '204' ? 'Done; no body' : 'Success',
        ...(route.response
          ? { content: { 'application/json': { schema: jsonSchema(route.response, 'output') } } }
          : {}),
      },
      default: {
        description: 'Error; see the error code table in @flotilla/protocol errors.ts',
        content: { 'application/json': { schema: errorBody } },
      },
    },
  };
}

/** The OpenAPI 3.1 document: every USER_ROUTES entry (operationId = its name), then the device API. */
export function openApiDocument(): {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
} {
  const paths: Record<string, Record<string, unknown>> = {};
  const add = (method: string, path: string, op: unknown) => {
    (paths[path.replace(/:([a-zA-Z]+)/g, '{$1}')] ??= {})[method.toLowerCase()] = op;
  };
  for (const [name, route] of Object.entries(USER_ROUTES) as [string, UserRoute][])
    add(route.method, route.path, operation(route, name));
  for (const doc of DEVICE_DOCS)
    add(doc.route.method, doc.route.path, operation({ ...doc, path: doc.route.path }, undefined));
  return {
    openapi: '3.1.0',
    info: { title: 'Flotilla API', version: '1' },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'API key, session token, device key or provisioning key',
        },
      },
    },
    security: [{ bearer: [] }],
    paths,
  };
}

export function registerOpenApi(app: FastifyInstance, db: Db): void {
  let cached: Record<string, unknown> | undefined;
  serve(app, db, USER_ROUTES.openApi, async () => (cached ??= openApiDocument()));
}
