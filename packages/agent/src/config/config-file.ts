import { readFile } from 'node:fs/promises';
import { FlotillaError, configJsonSchema, generateDeviceUuid, generateKey, type ConfigJson } from '@flotilla/protocol';
import { writeFileAtomic } from './atomic-write.js';

/**
 * config.json as read from disk. `raw` is kept to write back: unknown keys and the original value types belong to
 * balenaOS tools and the user, so the agent only ever adds or replaces its own keys.
 */
export interface ConfigFile {
  path: string;
  raw: Record<string, unknown>;
  config: ConfigJson;
}

export async function readConfig(path: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new FlotillaError('INVALID_CONFIG_JSON', `cannot read ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new FlotillaError('INVALID_CONFIG_JSON', `${path} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = configJsonSchema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new FlotillaError('INVALID_CONFIG_JSON', `${path} is invalid: ${issues}`, { details: parsed.error.issues });
  }
  return { path, raw: raw as Record<string, unknown>, config: parsed.data };
}

/** Merges `changes` into the file and writes it atomically; returns the re-validated result. */
export async function updateConfig(file: ConfigFile, changes: Record<string, unknown>): Promise<ConfigFile> {
  const raw = { ...file.raw, ...changes };
  await writeFileAtomic(file.path, `${JSON.stringify(raw, null, 2)}\n`);
  return { path: file.path, raw, config: configJsonSchema.parse(raw) };
}

/** Fills in identity the device chooses itself (uuid, device API key) and persists it before any network call. */
export async function ensureIdentity(file: ConfigFile): Promise<ConfigFile> {
  const changes: Record<string, unknown> = {};
  if (!file.config.uuid) changes.uuid = generateDeviceUuid();
  if (!file.config.deviceApiKey) changes.deviceApiKey = generateKey();
  return Object.keys(changes).length === 0 ? file : updateConfig(file, changes);
}

export function provisioningKey(config: ConfigJson): string | undefined {
  return config.provisioningApiKey ?? config.apiKey;
}

/**
 * A managed device that is not registered yet needs a provisioning key and a fleet to register into; without
 * them the file is unusable, and that is said at start (exit with INVALID_CONFIG_JSON), not retried forever.
 */
export function assertProvisionable(file: ConfigFile): void {
  const { config } = file;
  if (!config.apiEndpoint || (config.deviceId !== undefined && config.registered_at !== undefined)) return;
  if (!provisioningKey(config))
    throw new FlotillaError(
      'INVALID_CONFIG_JSON',
      `${file.path} has apiEndpoint but neither provisioningApiKey nor apiKey, and the device is not registered`,
    );
  if (config.applicationId === undefined)
    throw new FlotillaError(
      'INVALID_CONFIG_JSON',
      `${file.path} has apiEndpoint but no applicationId to register into`,
    );
}
