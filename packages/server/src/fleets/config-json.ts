import { DEFAULT_LISTEN_PORT, encodeRootCa } from '@flotilla/protocol';
import type { ConfigJson, ConfigJsonRequest } from '@flotilla/protocol';
import type { Db } from '../db/database.js';
import type { FleetRow } from './fleets.js';
import { createProvisioningKey } from './provisioning-keys.js';

/**
 * A config.json for a new device of the fleet, carrying a provisioning key made for it, and the server's CA
 * (`rootCa`, PEM) when its certificate is not publicly trusted.
 */
export async function makeConfigJson(
  db: Db,
  fleet: FleetRow,
  creator: { userId: number; username: string },
  publicUrl: string,
  input: ConfigJsonRequest,
  rootCa?: string,
): Promise<ConfigJson> {
  const key = await createProvisioningKey(db, fleet.id, creator, {
    name: 'config.json',
    expiresAt: input.provisioningKeyExpiry,
  });
  const config: ConfigJson = {
    apiEndpoint: publicUrl,
    deltaEndpoint: publicUrl,
    registryEndpoint: new URL(publicUrl).host,
    applicationId: fleet.id,
    applicationName: fleet.slug,
    deviceType: input.deviceType ?? fleet.device_type,
    provisioningApiKey: key.key,
    // balenaOS images older than the provisioningApiKey field read `apiKey`.
    apiKey: key.key,
    listenPort: DEFAULT_LISTEN_PORT,
    appUpdatePollInterval: input.appUpdatePollInterval ?? 900_000,
    persistentLogging: input.persistentLogging ?? false,
    developmentMode: input.developmentMode ?? false,
  };
  // WARNING: without it a balenaOS device cannot talk to a server with a private CA: the Supervisor's log stream
  // and the engine's pulls fail on the first request.
  if (rootCa !== undefined) config.balenaRootCA = encodeRootCa(rootCa);
  if (input.hostname !== undefined) config.hostname = input.hostname;
  if (input.dnsServers !== undefined) config.dnsServers = input.dnsServers;
  if (input.sshKeys !== undefined || input.wifiSsid !== undefined) {
    config.os = {};
    if (input.sshKeys !== undefined) config.os.sshKeys = input.sshKeys;
    if (input.wifiSsid !== undefined)
      config.os.network = {
        wifi: { ssid: input.wifiSsid, ...(input.wifiKey === undefined ? {} : { psk: input.wifiKey }) },
      };
  }
  return config;
}
