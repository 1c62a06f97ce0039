import { z } from 'zod';
import { envNameSchema } from './ids.js';

/**
 * The balena-compatible OData layer (`/v7/…`) the balena Supervisor and balena-sdk speak: routes and the write bodies
 * it accepts. Bodies are balena's field names; answers are `{ "d": [...] }` collections, `{ "__id": n }` references
 * and `201` with the created entity (see packages/server/README.md for what is served).
 */
export const ODATA_ROUTES = {
  /** `GET /v7/<resource>`, `/v7/<resource>(<key>)`, `/v7/<resource>/$count`, with $filter, $select, $expand, … */
  read: { method: 'GET', path: '/v7/*' },
  create: { method: 'POST', path: '/v7/*' },
  /** By key or by `$filter` (balena-sdk patches `device?$filter=id in (…)`). */
  update: { method: 'PATCH', path: '/v7/*' },
  remove: { method: 'DELETE', path: '/v7/*' },
  /**
   * Supervisors v14 to v17.6.20 bind their API client to `/v6/`: registration recovery, the config report
   * (`POST /v6/device_config_variable`), the pin (`PATCH /v6/device(<id>)` with `should_be_running__release`) and
   * device tags. The resources and fields they use are the same under both prefixes.
   */
  readV6: { method: 'GET', path: '/v6/*' },
  createV6: { method: 'POST', path: '/v6/*' },
  updateV6: { method: 'PATCH', path: '/v6/*' },
  removeV6: { method: 'DELETE', path: '/v6/*' },
  /** balena-sdk's `auth.whoami()` / `getActorId()`. */
  whoami: { method: 'GET', path: '/actor/v1/whoami' },
  /** balena-sdk's `models.config.getAll()` (no credentials). */
  config: { method: 'GET', path: '/config' },
} as const;

/** `GET /actor/v1/whoami`: the actor behind the key. Flotilla has no separate actor ids: `id` is the user's or device's. */
export const odataWhoamiSchema = z.union([
  z.object({
    id: z.number().int(),
    actorType: z.literal('user'),
    actorTypeId: z.number().int(),
    username: z.string(),
    email: z.string().nullable(),
  }),
  z.object({ id: z.number().int(), actorType: z.literal('device'), actorTypeId: z.number().int(), uuid: z.string() }),
]);
export type ODataWhoami = z.infer<typeof odataWhoamiSchema>;

const id = z.number().int().positive();
const value = z.string().max(64 * 1024);
/** Config variable names keep their spelling after the prefix (`BALENA_HOST_CONFIG_gpu_mem`). */
const configName = z
  .string()
  .max(200)
  .regex(/^(FLOTILLA|BALENA|RESIN)_[A-Za-z0-9_]+$/, 'FLOTILLA_, BALENA_ or RESIN_, then letters, digits and "_"');

export const odataDeviceEnvCreateSchema = z.strictObject({ device: id, name: envNameSchema, value });
export const odataDeviceConfigCreateSchema = z.strictObject({ device: id, name: configName, value });
export const odataFleetEnvCreateSchema = z.strictObject({ application: id, name: envNameSchema, value });
export const odataFleetConfigCreateSchema = z.strictObject({ application: id, name: configName, value });
/** A fleet's variable for one service (`service` is the service's id, as `GET /v7/service` lists them). */
export const odataServiceEnvCreateSchema = z.strictObject({ service: id, name: envNameSchema, value });
/**
 * A device's variable for one service: `service_install` is the device's install of the service, as
 * `GET /v7/service_install` lists them (balena-sdk's `device.serviceVar.set`).
 */
export const odataDeviceServiceEnvCreateSchema = z.strictObject({ service_install: id, name: envNameSchema, value });
export const odataVariablePatchSchema = z.strictObject({ value });
export const odataDeviceTagCreateSchema = z.strictObject({
  device: id,
  tag_key: z.string().min(1).max(100),
  value: z.string().max(1000),
});
export const odataDeviceTagPatchSchema = z.strictObject({ value: z.string().max(1000) });

const version = z.string().max(200).nullable();
/** What `PATCH /v7/device(…)` may change. Both pin fields name the same pin (balena renamed one to the other). */
export const odataDevicePatchSchema = z.strictObject({
  device_name: z.string().trim().min(1).max(200).optional(),
  should_be_running__release: id.nullable().optional(),
  is_pinned_on__release: id.nullable().optional(),
  os_version: version.optional(),
  os_variant: version.optional(),
  supervisor_version: version.optional(),
});
export type ODataDevicePatch = z.infer<typeof odataDevicePatchSchema>;
