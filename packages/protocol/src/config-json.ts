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
  /**
   * The CA the control plane's certificate chains to, when the world's trust stores do not know it: a PEM
   * certificate, base64-encoded (as balenaOS expects it). Devices trust it in addition to the usual roots.
   */
  balenaRootCA: z
    .string()
    .regex(/^[A-Za-z0-9+/=\s]+$/, 'base64')
    .refine((value) => decodeRootCa(value) !== undefined, 'a base64-encoded PEM certificate')
    .optional(),
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

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

// INVARIANT: no `Buffer` here (the dashboard runs this in the browser); PEM text is ASCII, so btoa/atob fit.
/** config.json's `balenaRootCA` for a PEM CA certificate (base64 of the PEM text, as balenaOS expects). */
export function encodeRootCa(pem: string): string {
  return btoa(pem);
}

/** The PEM certificates in a config.json `balenaRootCA`, or undefined when it holds none. */
export function decodeRootCa(value: string): string[] | undefined {
  let text: string;
  try {
    text = atob(value.replace(/\s+/g, ''));
  } catch {
    return undefined;
  }
  const certificates = text.match(PEM_CERTIFICATE);
  return certificates && certificates.length > 0 ? certificates : undefined;
}
