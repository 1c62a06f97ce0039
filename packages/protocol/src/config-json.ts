import { z } from 'zod';
import { deviceUuidSchema } from './ids.js';

/**
 * A device's config.json (the boot partition file on balenaOS). The agent reads it at start, fills in what is
 * missing (uuid, deviceApiKey) and writes it back atomically. Unknown keys are kept untouched: balenaOS tools and
 * the user own them.
 */
const intLike = z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]);

export const configJsonSchema = z.looseObject({
  apiEndpoint: z.url({ protocol: /^https?$/ }).optional(),
  deltaEndpoint: z.url({ protocol: /^https?$/ }).optional(),
  registryEndpoint: z.string().optional(),
  uuid: deviceUuidSchema.optional(),
  /** Provisioning key; balenaOS names it `apiKey`, newer images `provisioningApiKey`. */
  apiKey: z.string().min(1).optional(),
  provisioningApiKey: z.string().min(1).optional(),
  deviceApiKey: z.string().min(16).optional(),
  deviceApiKeys: z.record(z.string(), z.string()).optional(),
  deviceId: z.number().int().optional(),
  registered_at: z.number().optional(),
  applicationId: intLike.optional(),
  applicationName: z.string().optional(),
  userId: intLike.optional(),
  deviceType: z.string().min(1).optional(),
  hostname: z
    .string()
    .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/, 'a valid hostname label')
    .optional(),
  persistentLogging: z.boolean().optional(),
  developmentMode: z.boolean().optional(),
  localMode: z.boolean().optional(),
  listenPort: z.number().int().min(1).max(65535).optional(),
  appUpdatePollInterval: z.number().int().min(10_000).optional(),
  dnsServers: z.string().optional(),
  os: z
    .looseObject({
      sshKeys: z.array(z.string()).optional(),
      network: z
        .looseObject({ wifi: z.looseObject({ ssid: z.string(), psk: z.string().optional() }).optional() })
        .optional(),
    })
    .optional(),
});
export type ConfigJson = z.infer<typeof configJsonSchema>;

/** The device's local API default port, as on balenaOS. */
export const DEFAULT_LISTEN_PORT = 48484;
