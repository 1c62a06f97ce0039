/**
 * Engine object names. The optional namespace prefix exists so several agents (tests, benches) can share one
 * engine without seeing each other's objects; a device runs with an empty namespace.
 */
export const NAMESPACE_LABEL = 'io.flotilla.namespace';

export function volumeName(namespace: string, appId: number, name: string): string {
  return `${namespace}${appId}_${name}`;
}

export function networkName(namespace: string, appId: number, name: string): string {
  return `${namespace}${appId}_${name}`;
}

export function containerName(namespace: string, serviceName: string, releaseId: number, configHash: string): string {
  return `${namespace}${serviceName}_${releaseId}_${configHash.slice(0, 12)}`;
}
