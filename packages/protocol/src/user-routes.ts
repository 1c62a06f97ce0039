import { z } from 'zod';
import { configJsonSchema } from './config-json.js';
import { serviceNameSchema, slugSchema } from './ids.js';
import { API_PREFIX } from './routes.js';
import * as api from './user-api.js';
import * as remote from './remote-access.js';
import * as browser from './browser.js';
import * as rollouts from './rollouts.js';
import * as osReleases from './os-releases.js';
import { putUpdateWindowRequestSchema } from './update-window.js';

/**
 * Every route of the user API under /api/v1, defined once: the server registers each entry (server
 * `http/serve.ts`), the OpenAPI document is generated from this table, and clients call entries through
 * `createApiClient` (api-client.ts). A served /api/v1 route missing here fails the server's route-table test.
 *
 * INVARIANT: `params`, `query` and `body` are what the server parses the request with (params and query arrive as
 * strings); `response` is what a client validates the answer with. No `response`: the answer has no body (`status`
 * 204) or is not JSON. `auth: 'none'` marks the only routes callable without a user credential.
 */
export interface UserRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly path: string;
  readonly summary: string;
  readonly auth?: 'none';
  /** Success status; 200 unless given. */
  readonly status?: 200 | 201 | 202 | 204;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  readonly response?: z.ZodType;
}

/** A number in a path segment (`/api-keys/:id`), turned into a number once parsed. */
const numericId = z
  .string()
  .regex(/^\d{1,12}$/)
  .transform(Number);
/** Devices are addressed by full UUID, a unique 7+ character prefix, or a name: the lookup decides. */
const deviceRef = z.string().min(1).max(100);
const orgRef = z.string().min(1).max(200);
const variableName = z.string().min(1).max(255);

const fleetParams = z.object({ slug: slugSchema });
const fleetItemParams = z.object({ slug: slugSchema, name: variableName });
const deviceParams = z.object({ uuid: deviceRef });
const deviceItemParams = z.object({ uuid: deviceRef, name: variableName });
const orgParams = z.object({ org: orgRef });
const idParams = z.object({ id: numericId });
const releaseParams = z.object({ ref: z.string().min(1).max(100) });
/**
 * Which rows of a name a delete removes: `service` names one service's. Without it, every row of the name (each
 * service's too), unless `exact=1`: then only the one for all services, which is how a client removes that one alone.
 */
const serviceQuery = z.object({
  service: z.string().min(1).max(63).optional(),
  exact: z.enum(['1', '0']).optional(),
});

export const logsQuerySchema = z.object({
  tail: z.coerce.number().int().min(0).max(100_000).default(100),
  /** `1`/`true`: keep the answer open as Server-Sent Events (`event: log`, one LogEntry per `data:`). */
  follow: z.enum(['1', 'true', '0', 'false']).optional(),
  service: serviceNameSchema.optional(),
});

const p = API_PREFIX;

export const USER_ROUTES = {
  // ---------------------------------------------------------------------------------------- identity and access
  login: {
    method: 'POST',
    path: `${p}/auth/login`,
    auth: 'none',
    body: api.loginRequestSchema,
    response: api.loginResponseSchema,
    summary: 'Log in with a password; returns a session token',
  },
  browserLogin: {
    method: 'POST',
    path: `${p}/auth/browser-session`,
    auth: 'none',
    body: api.loginRequestSchema,
    response: browser.browserSessionResponseSchema,
    summary: 'Sign in a browser: sets the HttpOnly session cookie and returns its CSRF token',
  },
  csrfToken: {
    method: 'GET',
    path: `${p}/auth/csrf`,
    response: browser.csrfTokenResponseSchema,
    summary: "The CSRF token of the caller's cookie session (the dashboard after a reload)",
  },
  logout: {
    method: 'POST',
    path: `${p}/auth/logout`,
    status: 204,
    summary: 'End the session that made this request (cookie or session token) and clear the cookie',
  },
  whoami: {
    method: 'GET',
    path: `${p}/whoami`,
    response: api.whoamiResponseSchema,
    summary: 'The caller and their organizations',
  },
  listApiKeys: {
    method: 'GET',
    path: `${p}/api-keys`,
    response: api.listOf(api.apiKeySchema),
    summary: "The caller's API keys",
  },
  createApiKey: {
    method: 'POST',
    path: `${p}/api-keys`,
    status: 201,
    body: api.createApiKeyRequestSchema,
    response: api.createdApiKeySchema,
    summary: 'Create an API key (shown once)',
  },
  deleteApiKey: {
    method: 'DELETE',
    path: `${p}/api-keys/:id`,
    status: 204,
    params: idParams,
    summary: 'Delete an API key; streams it opened end at once',
  },
  createUser: {
    method: 'POST',
    path: `${p}/users`,
    status: 201,
    body: api.createUserRequestSchema,
    response: api.userSchema,
    summary: 'Create a user (server administrators)',
  },

  // -------------------------------------------------------------------------------------------- organizations
  listOrganizations: {
    method: 'GET',
    path: `${p}/organizations`,
    response: api.listOf(api.organizationSchema),
    summary: 'Organizations of the caller',
  },
  createOrganization: {
    method: 'POST',
    path: `${p}/organizations`,
    status: 201,
    body: api.createOrganizationRequestSchema,
    response: api.organizationSchema,
    summary: 'Create an organization',
  },
  getOrganization: {
    method: 'GET',
    path: `${p}/organizations/:org`,
    params: orgParams,
    response: api.organizationSchema,
    summary: 'One organization by handle or name',
  },
  listMembers: {
    method: 'GET',
    path: `${p}/organizations/:org/members`,
    params: orgParams,
    response: api.listOf(api.memberSchema),
    summary: 'Members of an organization',
  },
  setMemberRole: {
    method: 'PATCH',
    path: `${p}/organizations/:org/members/:userId`,
    params: z.object({ org: orgRef, userId: numericId }),
    body: api.setMemberRoleRequestSchema,
    response: api.memberSchema,
    summary: "Set a member's role (admins; by user id); in force at once, the last admin stays one",
  },
  removeMember: {
    method: 'DELETE',
    path: `${p}/organizations/:org/members/:userId`,
    status: 204,
    params: z.object({ org: orgRef, userId: numericId }),
    summary: 'Remove a member (admins; by user id); in force at once, the last admin stays',
  },
  invite: {
    method: 'POST',
    path: `${p}/organizations/:org/invitations`,
    status: 202,
    params: orgParams,
    body: api.inviteRequestSchema,
    response: api.inviteResponseSchema,
    summary: 'Invite a user by username (admins); 202 whether or not the user exists',
  },
  listInvitations: {
    method: 'GET',
    path: `${p}/invitations`,
    response: api.listOf(api.invitationSchema),
    summary: "The caller's pending invitations",
  },
  acceptInvitation: {
    method: 'POST',
    path: `${p}/invitations/:id/accept`,
    params: idParams,
    response: api.acceptInvitationResponseSchema,
    summary: 'Accept an invitation: become a member with its role',
  },
  declineInvitation: {
    method: 'POST',
    path: `${p}/invitations/:id/decline`,
    status: 204,
    params: idParams,
    summary: 'Decline an invitation',
  },

  // --------------------------------------------------------------------------------------------------- fleets
  listFleets: {
    method: 'GET',
    path: `${p}/fleets`,
    response: api.listOf(api.fleetSchema),
    summary: 'Fleets visible to the caller',
  },
  createFleet: {
    method: 'POST',
    path: `${p}/fleets`,
    status: 201,
    body: api.createFleetRequestSchema,
    response: api.fleetSchema,
    summary: 'Create a fleet',
  },
  getFleet: {
    method: 'GET',
    path: `${p}/fleets/:slug`,
    params: fleetParams,
    response: api.fleetSchema,
    summary: 'One fleet',
  },
  updateFleet: {
    method: 'PATCH',
    path: `${p}/fleets/:slug`,
    params: fleetParams,
    body: api.updateFleetRequestSchema,
    response: api.fleetSchema,
    summary: 'Rename or pin a fleet',
  },
  deleteFleet: {
    method: 'DELETE',
    path: `${p}/fleets/:slug`,
    status: 204,
    params: fleetParams,
    summary: 'Delete a fleet with its devices and releases',
  },
  listProvisioningKeys: {
    method: 'GET',
    path: `${p}/fleets/:slug/provisioning-keys`,
    params: fleetParams,
    response: api.listOf(api.provisioningKeySchema),
    summary: 'Provisioning keys of a fleet',
  },
  createProvisioningKey: {
    method: 'POST',
    path: `${p}/fleets/:slug/provisioning-keys`,
    status: 201,
    params: fleetParams,
    body: api.createProvisioningKeyRequestSchema,
    response: api.createdProvisioningKeySchema,
    summary: 'Create a provisioning key (organization admins; shown once, works while its creator is an admin)',
  },
  revokeProvisioningKey: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/provisioning-keys/:id`,
    params: z.object({ slug: slugSchema, id: numericId }),
    response: api.provisioningKeySchema,
    summary: 'Revoke a provisioning key; returns it as revoked',
  },
  fleetConfigJson: {
    method: 'POST',
    path: `${p}/fleets/:slug/config-json`,
    params: fleetParams,
    body: api.configJsonRequestSchema,
    response: configJsonSchema,
    summary: 'A config.json for a new device, with a new provisioning key',
  },

  // ------------------------------------------------------------------------------------------------- releases
  listFleetReleases: {
    method: 'GET',
    path: `${p}/fleets/:slug/releases`,
    params: fleetParams,
    response: api.listOf(api.releaseSchema),
    summary: 'Releases of a fleet, newest first',
  },
  createRelease: {
    method: 'POST',
    path: `${p}/fleets/:slug/releases`,
    status: 201,
    params: fleetParams,
    body: api.createReleaseRequestSchema,
    response: api.releaseSchema,
    summary: 'Create a release',
  },
  getRelease: {
    method: 'GET',
    path: `${p}/releases/:ref`,
    params: releaseParams,
    response: api.releaseSchema,
    summary: 'One release by id or commit',
  },
  updateRelease: {
    method: 'PATCH',
    path: `${p}/releases/:ref`,
    params: releaseParams,
    body: api.updateReleaseRequestSchema,
    response: api.releaseSchema,
    summary: 'Set images, status or notes of a running release',
  },

  // ------------------------------------------------------------------------------------------------- rollouts
  createRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/rollouts`,
    status: 201,
    params: fleetParams,
    body: rollouts.createRolloutRequestSchema,
    response: rollouts.rolloutSchema,
    summary: 'Stage a release still being deployed: it goes to batches of the fleet in turn once it succeeds',
  },
  getRollout: {
    method: 'GET',
    path: `${p}/fleets/:slug/rollout`,
    params: fleetParams,
    response: rollouts.rolloutSchema,
    summary: "The fleet's latest rollout: its batches, devices and events",
  },
  pauseRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/rollout/pause`,
    params: fleetParams,
    response: rollouts.rolloutSchema,
    summary: 'Pause the running rollout: no further batch opens',
  },
  resumeRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/rollout/resume`,
    params: fleetParams,
    response: rollouts.rolloutSchema,
    summary: 'Resume a paused rollout; the failures that paused it no longer count',
  },
  listRolloutPolicies: {
    method: 'GET',
    path: `${p}/fleets/:slug/rollout-policies`,
    params: fleetParams,
    response: api.listOf(rollouts.rolloutPolicySchema),
    summary: "The fleet's named rollout plans",
  },
  putRolloutPolicy: {
    method: 'PUT',
    path: `${p}/fleets/:slug/rollout-policies/:name`,
    params: z.object({ slug: slugSchema, name: rollouts.rolloutPolicyNameSchema }),
    body: rollouts.putRolloutPolicyRequestSchema,
    response: rollouts.rolloutPolicySchema,
    summary: 'Store a named rollout plan on the fleet (replacing one of that name)',
  },
  deleteRolloutPolicy: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/rollout-policies/:name`,
    status: 204,
    params: z.object({ slug: slugSchema, name: rollouts.rolloutPolicyNameSchema }),
    summary: 'Delete a named rollout plan',
  },
  abortRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/rollout/abort`,
    params: fleetParams,
    response: rollouts.rolloutSchema,
    summary: 'Abort the rollout: every device of the fleet goes back to the previous release',
  },

  // ---------------------------------------------------------------------------------------- fleet variables
  listFleetEnv: {
    method: 'GET',
    path: `${p}/fleets/:slug/env`,
    params: fleetParams,
    response: api.listOf(api.envVarSchema),
    summary: 'Fleet environment variables',
  },
  setFleetEnv: {
    method: 'POST',
    path: `${p}/fleets/:slug/env`,
    params: fleetParams,
    body: api.setEnvVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a fleet (or fleet-service) environment variable',
  },
  putFleetEnv: {
    method: 'PUT',
    path: `${p}/fleets/:slug/env`,
    params: fleetParams,
    body: api.setEnvVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a fleet (or fleet-service) environment variable (same as POST)',
  },
  deleteFleetEnv: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/env/:name`,
    status: 204,
    params: fleetItemParams,
    query: serviceQuery,
    summary: 'Delete a fleet environment variable (?service= for a service one, ?exact=1 for the all-services one)',
  },
  listFleetConfig: {
    method: 'GET',
    path: `${p}/fleets/:slug/config`,
    params: fleetParams,
    response: api.listOf(api.envVarSchema),
    summary: 'Fleet config variables',
  },
  setFleetConfig: {
    method: 'POST',
    path: `${p}/fleets/:slug/config`,
    params: fleetParams,
    body: api.setConfigVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a fleet config variable',
  },
  putFleetConfig: {
    method: 'PUT',
    path: `${p}/fleets/:slug/config`,
    params: fleetParams,
    body: api.setConfigVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a fleet config variable (same as POST)',
  },
  deleteFleetConfig: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/config/:name`,
    status: 204,
    params: fleetItemParams,
    summary: 'Delete a fleet config variable',
  },
  listFleetTags: {
    method: 'GET',
    path: `${p}/fleets/:slug/tags`,
    params: fleetParams,
    response: api.listOf(api.fleetTagSchema),
    summary: 'Tags of every device of the fleet',
  },

  // -------------------------------------------------------------------------------------------------- devices
  listDevices: {
    method: 'GET',
    path: `${p}/devices`,
    query: browser.listDevicesQuerySchema,
    response: browser.devicePageSchema,
    summary: 'Devices visible to the caller: ?fleet=, search, status, release, sort, limit and offset',
  },
  getDevice: {
    method: 'GET',
    path: `${p}/devices/:uuid`,
    params: deviceParams,
    response: api.deviceSchema,
    summary: 'One device by UUID or unique 7+ char prefix',
  },
  updateDevice: {
    method: 'PATCH',
    path: `${p}/devices/:uuid`,
    params: deviceParams,
    body: api.updateDeviceRequestSchema,
    response: api.deviceSchema,
    summary: 'Rename, move or pin a device',
  },
  deleteDevice: {
    method: 'DELETE',
    path: `${p}/devices/:uuid`,
    status: 204,
    params: deviceParams,
    summary: 'Delete a device; its keys stop working at once',
  },
  listDeviceEnv: {
    method: 'GET',
    path: `${p}/devices/:uuid/env`,
    params: deviceParams,
    response: api.listOf(api.envVarSchema),
    summary: 'Device environment variables',
  },
  setDeviceEnv: {
    method: 'POST',
    path: `${p}/devices/:uuid/env`,
    params: deviceParams,
    body: api.setEnvVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a device (or device-service) environment variable',
  },
  putDeviceEnv: {
    method: 'PUT',
    path: `${p}/devices/:uuid/env`,
    params: deviceParams,
    body: api.setEnvVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a device (or device-service) environment variable (same as POST)',
  },
  deleteDeviceEnv: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/env/:name`,
    status: 204,
    params: deviceItemParams,
    query: serviceQuery,
    summary: 'Delete a device environment variable (?service= for a service one, ?exact=1 for the all-services one)',
  },
  listDeviceConfig: {
    method: 'GET',
    path: `${p}/devices/:uuid/config`,
    params: deviceParams,
    response: api.listOf(api.envVarSchema),
    summary: 'Device config variables',
  },
  setDeviceConfig: {
    method: 'POST',
    path: `${p}/devices/:uuid/config`,
    params: deviceParams,
    body: api.setConfigVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a device config variable',
  },
  putDeviceConfig: {
    method: 'PUT',
    path: `${p}/devices/:uuid/config`,
    params: deviceParams,
    body: api.setConfigVarRequestSchema,
    response: api.envVarSchema,
    summary: 'Set a device config variable (same as POST)',
  },
  deleteDeviceConfig: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/config/:name`,
    status: 204,
    params: deviceItemParams,
    summary: 'Delete a device config variable',
  },
  listDeviceTags: {
    method: 'GET',
    path: `${p}/devices/:uuid/tags`,
    params: deviceParams,
    response: api.listOf(api.tagSchema),
    summary: 'Device tags',
  },
  setDeviceTag: {
    method: 'POST',
    path: `${p}/devices/:uuid/tags`,
    params: deviceParams,
    body: api.setTagRequestSchema,
    response: api.tagSchema,
    summary: 'Set a device tag',
  },
  putDeviceTag: {
    method: 'PUT',
    path: `${p}/devices/:uuid/tags`,
    params: deviceParams,
    body: api.setTagRequestSchema,
    response: api.tagSchema,
    summary: 'Set a device tag (same as POST)',
  },
  deleteDeviceTag: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/tags/:name`,
    status: 204,
    params: deviceItemParams,
    summary: 'Delete a device tag',
  },
  createDeviceAction: {
    method: 'POST',
    path: `${p}/devices/:uuid/actions`,
    status: 201,
    params: deviceParams,
    query: z.object({ wait: z.coerce.number().int().min(0).max(30_000).default(5_000) }),
    body: api.deviceActionRequestSchema,
    response: api.deviceActionResponseSchema,
    summary: "Send an action to a device; waits up to ?wait= ms (default 5000) for the device's answer",
  },
  listDeviceActions: {
    method: 'GET',
    path: `${p}/devices/:uuid/actions`,
    params: deviceParams,
    response: api.listOf(api.deviceActionResponseSchema),
    summary: 'Recent actions of a device, newest first',
  },
  getDeviceAction: {
    method: 'GET',
    path: `${p}/devices/:uuid/actions/:id`,
    params: z.object({ uuid: deviceRef, id: z.coerce.number().int().positive() }),
    response: api.deviceActionResponseSchema,
    summary: 'One action of a device',
  },
  deviceLogs: {
    method: 'GET',
    path: `${p}/devices/:uuid/logs`,
    params: deviceParams,
    query: logsQuerySchema,
    response: api.listOf(api.logEntrySchema),
    summary: 'Recent log lines; with ?follow=1 a Server-Sent Events stream (event "log") that stays open',
  },

  fleetEvents: {
    method: 'GET',
    path: `${p}/fleets/:slug/events`,
    params: fleetParams,
    summary: 'Server-Sent Events: each change of a device of the fleet (event "device"), removals, release changes',
  },
  fleetCountsEvents: {
    method: 'GET',
    path: `${p}/fleet-counts/events`,
    summary: 'Server-Sent Events: device counts by status of each fleet you see (event "counts"), live',
  },

  // ------------------------------------------------------------------------------------- remote access
  // The shell and tunnel routes are WebSocket upgrades (remote-access.ts describes the frames); a plain GET gets 400.
  deviceShell: {
    method: 'GET',
    path: `${p}/devices/:uuid/shell`,
    params: deviceParams,
    query: remote.shellQuerySchema,
    summary: "WebSocket: a shell on the device's host or in a service's container, or one command (?command=)",
  },
  deviceTunnel: {
    method: 'GET',
    path: `${p}/devices/:uuid/tunnel`,
    params: deviceParams,
    query: remote.tunnelQuerySchema,
    summary: "WebSocket: one TCP connection to a port on the device's host or a service's address",
  },
  setFleetUpdateWindow: {
    method: 'PUT',
    path: `${p}/fleets/:slug/update-window`,
    params: fleetParams,
    body: putUpdateWindowRequestSchema,
    response: api.fleetSchema,
    summary:
      "Set the fleet's maintenance window: its devices apply updates only inside it (unless they have their own)",
  },
  clearFleetUpdateWindow: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/update-window`,
    params: fleetParams,
    status: 204,
    summary: "Remove the fleet's maintenance window: its devices without their own apply updates at once",
  },
  setDeviceUpdateWindow: {
    method: 'PUT',
    path: `${p}/devices/:uuid/update-window`,
    params: deviceParams,
    body: putUpdateWindowRequestSchema,
    response: api.deviceSchema,
    summary: "Set the device's own maintenance window, in place of its fleet's",
  },
  clearDeviceUpdateWindow: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/update-window`,
    params: deviceParams,
    status: 204,
    summary: "Remove the device's own maintenance window: its fleet's applies again",
  },
  getDevicePublicUrl: {
    method: 'GET',
    path: `${p}/devices/:uuid/public-url`,
    params: deviceParams,
    response: remote.publicUrlSchema,
    summary: "Whether the device's public URL is on, its port and its address",
  },
  enableDevicePublicUrl: {
    method: 'PUT',
    path: `${p}/devices/:uuid/public-url`,
    params: deviceParams,
    body: remote.enablePublicUrlRequestSchema,
    response: remote.publicUrlSchema,
    summary: "Make the device's HTTP service (default port 80) reachable through the server at a public URL",
  },
  disableDevicePublicUrl: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/public-url`,
    params: deviceParams,
    status: 204,
    summary: "Turn the device's public URL off; its open connections close at once",
  },
  listRemoteSessions: {
    method: 'GET',
    path: `${p}/remote-sessions`,
    query: remote.remoteSessionsQuerySchema,
    response: api.listOf(remote.remoteSessionSchema),
    summary: 'The audit log of shells, tunnels and public-URL connections to devices you can see, newest first',
  },

  // ------------------------------------------------------------------------------------------ host OS releases
  createOsRelease: {
    method: 'POST',
    path: `${p}/organizations/:org/os-releases`,
    params: orgParams,
    body: osReleases.createOsReleaseRequestSchema,
    status: 201,
    response: osReleases.osReleaseSchema,
    summary: "Record an OS release image pushed to the organization's registry repository (admins and members)",
  },
  listOsReleases: {
    method: 'GET',
    path: `${p}/os-releases`,
    query: osReleases.listOsReleasesQuerySchema,
    response: api.listOf(osReleases.osReleaseSchema),
    summary: 'The OS releases of your organizations, newest first; by device type or organization',
  },
  setDeviceOs: {
    method: 'PUT',
    path: `${p}/devices/:uuid/os`,
    params: deviceParams,
    body: osReleases.setTargetOsRequestSchema,
    response: osReleases.targetOsAnswerSchema,
    summary: 'Set the host OS version the device must run (an OS release of its device type and organization)',
  },
  setFleetOs: {
    method: 'PUT',
    path: `${p}/fleets/:slug/os`,
    params: fleetParams,
    body: osReleases.setTargetOsRequestSchema,
    response: osReleases.targetOsAnswerSchema,
    summary: "Set the host OS version every device of the fleet's device type must run",
  },
  clearDeviceOs: {
    method: 'DELETE',
    path: `${p}/devices/:uuid/os`,
    params: deviceParams,
    response: osReleases.clearTargetOsAnswerSchema,
    summary: 'Clear the host OS version the device must run (an OS it installed stays)',
  },
  clearFleetOs: {
    method: 'DELETE',
    path: `${p}/fleets/:slug/os`,
    params: fleetParams,
    response: osReleases.clearTargetOsAnswerSchema,
    summary: "Clear the host OS target of every device of the fleet, and stop the fleet's OS rollout",
  },
  deleteOsRelease: {
    method: 'DELETE',
    path: `${p}/os-releases/:id`,
    status: 204,
    params: idParams,
    summary: 'Delete an OS release no device or OS rollout targets; the registry garbage collection frees its image',
  },

  createOsRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/os-rollouts`,
    status: 201,
    params: fleetParams,
    body: rollouts.createOsRolloutRequestSchema,
    response: rollouts.osRolloutSchema,
    summary: "Roll an OS version out to the fleet's devices in batches; the fleet's earlier OS rollout is superseded",
  },
  getOsRollout: {
    method: 'GET',
    path: `${p}/fleets/:slug/os-rollout`,
    params: fleetParams,
    response: rollouts.osRolloutSchema,
    summary: "The fleet's latest OS rollout: its batches and devices",
  },
  pauseOsRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/os-rollout/pause`,
    params: fleetParams,
    response: rollouts.osRolloutSchema,
    summary: 'Pause the running OS rollout: no further batch opens',
  },
  resumeOsRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/os-rollout/resume`,
    params: fleetParams,
    response: rollouts.osRolloutSchema,
    summary: 'Resume a paused OS rollout; the failures that paused it no longer count',
  },
  abortOsRollout: {
    method: 'POST',
    path: `${p}/fleets/:slug/os-rollout/abort`,
    params: fleetParams,
    response: rollouts.osRolloutSchema,
    summary: 'Abort the OS rollout: its devices that have not installed the OS are no longer asked to',
  },

  // ------------------------------------------------------------------------------------------------- the API
  openApi: {
    method: 'GET',
    path: `${p}/openapi.json`,
    auth: 'none',
    response: z.record(z.string(), z.unknown()),
    summary: 'This document: the OpenAPI 3.1 description of the user and device APIs',
  },
} as const satisfies Record<string, UserRoute>;

export type UserRouteName = keyof typeof USER_ROUTES;

/** What a client passes for a route: path parameters, query and body, each only when the route has them. */
export type RouteInput<R extends UserRoute> = (R extends { params: infer P extends z.ZodType }
  ? { params: { [K in keyof z.input<P>]: string | number } }
  : { params?: undefined }) &
  (R extends { query: infer Q extends z.ZodType } ? { query?: QueryInput<z.input<Q>> } : { query?: undefined }) &
  (R extends { body: infer B extends z.ZodType } ? { body: z.input<B> } : { body?: undefined });

type QueryInput<T> = { [K in keyof T]?: string | number | boolean | undefined };

/** What a client gets back for a route: the response schema's output; nothing for a route without one. */
export type RouteResponse<R extends UserRoute> = R extends { response: infer S extends z.ZodType }
  ? z.output<S>
  : undefined;

/**
 * What the server must answer for a route, checked at compile time: the response schema's input; nothing (`void`)
 * for a route without a response schema.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: the return type of a handler with no answer, which has no `return`
export type RouteReply<R extends UserRoute> = R extends { response: infer S extends z.ZodType } ? z.input<S> : void;
