import { z } from 'zod';
import { serviceNameSchema } from './ids.js';

/**
 * The subset of the compose specification Flotilla runs on devices. It is used three times: the CLI validates a
 * user's docker-compose.yml with it, the server stores it in a release, and the agent receives each service's part
 * as `composition` in target state. Unknown keys are rejected so a user learns at deploy time, not on the device,
 * that a feature is not supported.
 */

const stringOrList = z.union([z.string(), z.array(z.string())]);
const durationSchema = z.string().regex(/^(\d+(\.\d+)?(us|ms|s|m|h))+$/, 'a duration such as 30s, 1m30s or 500ms');

/** `KEY=value` list or a map; values may be numbers or booleans in YAML. */
export const envMapSchema = z.union([
  z.array(z.string()),
  z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
]);

export const healthcheckSchema = z.strictObject({
  test: stringOrList.optional(),
  interval: durationSchema.optional(),
  timeout: durationSchema.optional(),
  retries: z.number().int().min(0).optional(),
  start_period: durationSchema.optional(),
  disable: z.boolean().optional(),
});

export const restartPolicySchema = z.enum(['no', 'always', 'on-failure', 'unless-stopped']);

export const portSchema = z.union([
  z.number().int().min(1).max(65535),
  z
    .string()
    .regex(
      /^(\d{1,3}(\.\d{1,3}){3}:)?(\d{1,5}(-\d{1,5})?:)?\d{1,5}(-\d{1,5})?(\/(tcp|udp))?$/,
      'a port such as 80, "8080:80" or "127.0.0.1:53:53/udp"',
    ),
]);

export const buildSchema = z.union([
  z.string(),
  z.strictObject({
    context: z.string().optional(),
    dockerfile: z.string().optional(),
    args: envMapSchema.optional(),
    target: z.string().optional(),
  }),
]);

export const composeServiceSchema = z.strictObject({
  image: z.string().optional(),
  build: buildSchema.optional(),
  command: stringOrList.optional(),
  entrypoint: stringOrList.optional(),
  environment: envMapSchema.optional(),
  labels: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  depends_on: z
    .union([z.array(serviceNameSchema), z.record(serviceNameSchema, z.object({ condition: z.string().optional() }))])
    .optional(),
  restart: restartPolicySchema.optional(),
  volumes: z.array(z.string()).optional(),
  ports: z.array(portSchema).optional(),
  expose: z.array(z.union([z.string(), z.number()])).optional(),
  networks: z
    .union([
      z.array(z.string()),
      z.record(
        z.string(),
        z.union([z.null(), z.object({ aliases: z.array(z.string()).optional(), ipv4_address: z.string().optional() })]),
      ),
    ])
    .optional(),
  network_mode: z.string().optional(),
  privileged: z.boolean().optional(),
  devices: z.array(z.string()).optional(),
  cap_add: z.array(z.string()).optional(),
  cap_drop: z.array(z.string()).optional(),
  healthcheck: healthcheckSchema.optional(),
  working_dir: z.string().optional(),
  user: z.string().optional(),
  hostname: z.string().optional(),
  tmpfs: stringOrList.optional(),
  stop_signal: z.string().optional(),
  stop_grace_period: durationSchema.optional(),
  mem_limit: z.union([z.string(), z.number()]).optional(),
  cpu_shares: z.number().int().optional(),
  init: z.boolean().optional(),
  tty: z.boolean().optional(),
  stdin_open: z.boolean().optional(),
  read_only: z.boolean().optional(),
  dns: stringOrList.optional(),
  extra_hosts: z.array(z.string()).optional(),
  sysctls: z.union([z.array(z.string()), z.record(z.string(), z.union([z.string(), z.number()]))]).optional(),
  ulimits: z.record(z.string(), z.union([z.number(), z.object({ soft: z.number(), hard: z.number() })])).optional(),
  security_opt: z.array(z.string()).optional(),
  pid: z.string().optional(),
  ipc: z.string().optional(),
  shm_size: z.union([z.string(), z.number()]).optional(),
});
export type ComposeService = z.infer<typeof composeServiceSchema>;

export const composeVolumeSchema = z.union([
  z.null(),
  z.strictObject({
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), z.string()).optional(),
    labels: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
  }),
]);

export const composeNetworkSchema = z.union([
  z.null(),
  z.strictObject({
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), z.string()).optional(),
    internal: z.boolean().optional(),
    enable_ipv6: z.boolean().optional(),
    labels: z.union([z.array(z.string()), z.record(z.string(), z.string())]).optional(),
    ipam: z
      .object({
        driver: z.string().optional(),
        config: z
          .array(
            z.object({
              subnet: z.string().optional(),
              gateway: z.string().optional(),
              ip_range: z.string().optional(),
            }),
          )
          .optional(),
      })
      .optional(),
  }),
]);

export const composeFileSchema = z.strictObject({
  version: z.string().optional(),
  name: z.string().optional(),
  services: z
    .record(serviceNameSchema, composeServiceSchema)
    .refine((s) => Object.keys(s).length > 0, 'at least one service is required'),
  volumes: z.record(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/), composeVolumeSchema).optional(),
  networks: z.record(z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/), composeNetworkSchema).optional(),
});
export type ComposeFile = z.infer<typeof composeFileSchema>;
