import { arch } from 'node:os';
import type { Logger } from 'pino';
import { FlotillaError } from '@flotilla/protocol';
import { provisioningKey, updateConfig, type ConfigFile } from '../config/config-file.js';
import type { ControlPlane } from '../control-plane/control-plane.js';

export const AGENT_VERSION = '0.1.0';

export function defaultDeviceType(): string {
  return arch() === 'arm64' ? 'generic-aarch64' : arch() === 'arm' ? 'generic-armv7ahf' : 'generic-amd64';
}

/**
 * Registers the device with its provisioning key, or — when the control plane already knows the uuid (409, e.g.
 * the previous attempt registered but we crashed before writing config.json) — proves ownership by exchanging the
 * provisioning key for our device key. Idempotent: a registered config (deviceId set) returns at once.
 */
export async function provision(
  file: ConfigFile,
  controlPlane: ControlPlane,
  log: Logger,
  osVersion = `${process.platform} ${process.version}`,
): Promise<ConfigFile> {
  const { config } = file;
  if (config.deviceId !== undefined && config.registered_at !== undefined) return file;
  const uuid = config.uuid;
  const deviceApiKey = config.deviceApiKey;
  if (!uuid || !deviceApiKey) throw new Error('ensureIdentity() must run before provision()');
  const provKey = provisioningKey(config);
  if (!provKey)
    throw new FlotillaError(
      'INVALID_CONFIG_JSON',
      `${file.path} has apiEndpoint but neither provisioningApiKey nor apiKey, and the device is not registered`,
    );
  if (config.applicationId === undefined)
    throw new FlotillaError('INVALID_CONFIG_JSON', `${file.path} has no applicationId to register into`);

  const result = await controlPlane.register(
    {
      application: config.applicationId,
      uuid,
      device_type: config.deviceType ?? defaultDeviceType(),
      api_key: deviceApiKey,
      supervisor_version: AGENT_VERSION,
      os_version: osVersion,
      os_variant: config.developmentMode ? 'dev' : 'prod',
      ...(config.userId !== undefined ? { user: config.userId } : {}),
    },
    provKey,
  );
  let deviceId: number;
  if (result.kind === 'created') {
    deviceId = result.response.id;
    log.info({ deviceId, uuid }, 'registered');
  } else {
    // Already registered: maybe with our key already (find with it), else exchange with the provisioning key.
    const own = await controlPlane.findSelf(uuid, deviceApiKey);
    const found = own ?? (await controlPlane.findSelf(uuid, provKey));
    if (found === undefined)
      throw new FlotillaError('DEVICE_NOT_FOUND', `device ${uuid} exists (409) but cannot be found with our keys`);
    if (own === undefined) await controlPlane.keyExchange(found, deviceApiKey, provKey);
    deviceId = found;
    log.info({ deviceId, uuid }, 'device already registered; key exchanged');
  }
  return updateConfig(file, { deviceId, registered_at: Date.now() });
}
