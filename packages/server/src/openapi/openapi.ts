import type { FastifyInstance } from 'fastify';
import * as p from '@flotilla/protocol';
import { ERROR_CODES } from '@flotilla/protocol';
import { z } from 'zod';

/** Request and response schemas of the user API and device API, by `METHOD path`. */
const SCHEMAS: Record<string, { body?: z.ZodType; response?: z.ZodType; summary: string }> = {
  'POST /api/v1/auth/login': {
    body: p.loginRequestSchema,
    response: p.loginResponseSchema,
    summary: 'Log in with a password; returns a session token',
  },
  'GET /api/v1/whoami': { response: p.whoamiResponseSchema, summary: 'The caller and their organizations' },
  'GET /api/v1/api-keys': { response: p.listOf(p.apiKeySchema), summary: "The caller's API keys" },
  'POST /api/v1/api-keys': {
    body: p.createApiKeyRequestSchema,
    response: p.createdApiKeySchema,
    summary: 'Create an API key (shown once)',
  },
  'POST /api/v1/users': {
    body: p.createUserRequestSchema,
    response: p.userSchema,
    summary: 'Create a user (server administrators)',
  },
  'GET /api/v1/organizations': { response: p.listOf(p.organizationSchema), summary: 'Organizations of the caller' },
  'POST /api/v1/organizations': {
    body: p.createOrganizationRequestSchema,
    response: p.organizationSchema,
    summary: 'Create an organization',
  },
  'GET /api/v1/organizations/:org/members': {
    response: p.listOf(p.memberSchema),
    summary: 'Members of an organization',
  },
  'DELETE /api/v1/organizations/:org/members/:username': { summary: 'Remove a member (admins)' },
  'POST /api/v1/organizations/:org/invitations': {
    body: p.inviteRequestSchema,
    response: p.inviteResponseSchema,
    summary: 'Invite a user by username (admins); 202 whether or not the user exists',
  },
  'GET /api/v1/invitations': { response: p.listOf(p.invitationSchema), summary: "The caller's pending invitations" },
  'POST /api/v1/invitations/:id/accept': {
    response: p.acceptInvitationResponseSchema,
    summary: 'Accept an invitation: become a member with its role',
  },
  'POST /api/v1/invitations/:id/decline': { summary: 'Decline an invitation' },
  'GET /api/v1/fleets': { response: p.listOf(p.fleetSchema), summary: 'Fleets visible to the caller' },
  'POST /api/v1/fleets': { body: p.createFleetRequestSchema, response: p.fleetSchema, summary: 'Create a fleet' },
  'GET /api/v1/fleets/:slug': { response: p.fleetSchema, summary: 'One fleet' },
  'PATCH /api/v1/fleets/:slug': {
    body: p.updateFleetRequestSchema,
    response: p.fleetSchema,
    summary: 'Rename or pin a fleet',
  },
  'GET /api/v1/fleets/:slug/provisioning-keys': {
    response: p.listOf(p.provisioningKeySchema),
    summary: 'Provisioning keys of a fleet',
  },
  'POST /api/v1/fleets/:slug/provisioning-keys': {
    body: p.createProvisioningKeyRequestSchema,
    response: p.createdProvisioningKeySchema,
    summary: 'Create a provisioning key (organization admins; shown once, works while its creator is an admin)',
  },
  'POST /api/v1/fleets/:slug/config-json': {
    body: p.configJsonRequestSchema,
    response: p.configJsonSchema,
    summary: 'A config.json for a new device, with a new provisioning key',
  },
  'GET /api/v1/fleets/:slug/releases': {
    response: p.listOf(p.releaseSchema),
    summary: 'Releases of a fleet, newest first',
  },
  'POST /api/v1/fleets/:slug/releases': {
    body: p.createReleaseRequestSchema,
    response: p.releaseSchema,
    summary: 'Create a release',
  },
  'GET /api/v1/fleets/:slug/env': { response: p.listOf(p.envVarSchema), summary: 'Fleet environment variables' },
  'POST /api/v1/fleets/:slug/env': {
    body: p.setEnvVarRequestSchema,
    response: p.envVarSchema,
    summary: 'Set a fleet (or fleet-service) environment variable',
  },
  'GET /api/v1/fleets/:slug/config': { response: p.listOf(p.envVarSchema), summary: 'Fleet config variables' },
  'POST /api/v1/fleets/:slug/config': {
    body: p.setConfigVarRequestSchema,
    response: p.envVarSchema,
    summary: 'Set a fleet config variable',
  },
  'GET /api/v1/devices': {
    response: p.listOf(p.deviceSchema),
    summary: 'Devices visible to the caller (?fleet=<slug>)',
  },
  'GET /api/v1/devices/:uuid': { response: p.deviceSchema, summary: 'One device by UUID or unique 7+ char prefix' },
  'PATCH /api/v1/devices/:uuid': {
    body: p.updateDeviceRequestSchema,
    response: p.deviceSchema,
    summary: 'Rename, move or pin a device',
  },
  'POST /api/v1/devices/:uuid/env': {
    body: p.setEnvVarRequestSchema,
    response: p.envVarSchema,
    summary: 'Set a device (or device-service) environment variable',
  },
  'POST /api/v1/devices/:uuid/config': {
    body: p.setConfigVarRequestSchema,
    response: p.envVarSchema,
    summary: 'Set a device config variable',
  },
  'POST /api/v1/devices/:uuid/tags': {
    body: p.setTagRequestSchema,
    response: p.tagSchema,
    summary: 'Set a device tag',
  },
  'GET /api/v1/releases/:ref': { response: p.releaseSchema, summary: 'One release by id or commit' },
  'PATCH /api/v1/releases/:ref': {
    body: p.updateReleaseRequestSchema,
    response: p.releaseSchema,
    summary: 'Set images, status or notes of a running release',
  },
  'POST /device/register': {
    body: p.registerRequestSchema,
    response: p.registerResponseSchema,
    summary: 'Register a device (Bearer provisioning key)',
  },
  'GET /v7/device': { response: p.findSelfResponseSchema, summary: "Find a device id: $filter=uuid eq '<uuid>'" },
  'POST /api-key/device/:id/device-key': {
    body: p.keyExchangeRequestSchema,
    summary: 'Set a device key (Bearer provisioning key)',
  },
  'GET /device/v3/:uuid/state': {
    response: p.targetStateSchema,
    summary: 'Target state (Bearer device key; ETag / If-None-Match)',
  },
  'PATCH /device/v3/state': { body: p.stateReportSchema, summary: 'Report current state (Bearer device key)' },
  'PATCH /device/v3/tags': { body: p.tagsReportSchema, summary: 'Report device tags (Bearer device key)' },
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): unknown {
  try {
    return z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  } catch {
    // Some schemas (transforms) have no JSON Schema form; documenting them as free-form beats failing.
    return {};
  }
}

export function openApiDocument(routes: { method: string; url: string }[]): unknown {
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
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (route.url.startsWith('/v2') || route.url === '*') continue;
    const path = route.url.replace(/:([a-zA-Z]+)/g, '{$1}');
    const known = SCHEMAS[`${route.method} ${route.url}`];
    const parameters = [...route.url.matchAll(/:([a-zA-Z]+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      summary: known?.summary ?? `${route.method} ${route.url}`,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(known?.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: jsonSchema(known.body, 'input') } },
            },
          }
        : {}),
      responses: {
        '2XX': {
          description: 'Success',
          ...(known?.response
            ? { content: { 'application/json': { schema: jsonSchema(known.response, 'output') } } }
            : {}),
        },
        default: {
          description: 'Error; see the error code table in @flotilla/protocol errors.ts',
          content: { 'application/json': { schema: errorBody } },
        },
      },
    };
  }
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

export function registerOpenApi(app: FastifyInstance, routes: { method: string; url: string }[]): void {
  let cached: unknown;
  app.get(`${p.API_PREFIX}/openapi.json`, async () => (cached ??= openApiDocument(routes)));
}
