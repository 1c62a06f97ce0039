import type { RegistryAuth } from './container-engine.js';

/**
 * Pure: the credentials for pulling `ref`. Images on the control plane's registry (its host, or config.json
 * `registryEndpoint`) are pulled as `d_<uuid>` with the device key; any other registry is pulled anonymously.
 */
export function registryAuthFor(device: {
  hosts: readonly (string | undefined)[];
  uuid: string;
  deviceApiKey: string;
}): (ref: string) => RegistryAuth | undefined {
  const hosts = new Set(device.hosts.filter((h): h is string => !!h));
  return (ref) => {
    const host = ref.split('/')[0] ?? '';
    return hosts.has(host)
      ? { username: `d_${device.uuid}`, password: device.deviceApiKey, serveraddress: host }
      : undefined;
  };
}
