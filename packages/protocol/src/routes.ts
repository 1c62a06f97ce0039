/**
 * Route paths, defined once. Parameters are written Fastify-style (`:uuid`); `path()` fills them in for clients.
 */
export const DEVICE_ROUTES = {
  register: { method: 'POST', path: '/device/register' },
  findSelf: { method: 'GET', path: '/v7/device' },
  keyExchange: { method: 'POST', path: '/api-key/device/:id/device-key' },
  targetState: { method: 'GET', path: '/device/v3/:uuid/state' },
  reportState: { method: 'PATCH', path: '/device/v3/state' },
  reportTags: { method: 'PATCH', path: '/device/v3/tags' },
  logStream: { method: 'POST', path: '/device/v2/:uuid/log-stream' },
  /** balenaOS's os-config asks this at boot for its host services' configuration (osConfigSchema). */
  osConfig: { method: 'GET', path: '/os/v1/config' },
  /** Liveness as balena's API answers it: `OK`, no credentials. */
  ping: { method: 'GET', path: '/ping' },
  /** Flotilla agents keep one WebSocket here for actions, target news and stream requests. */
  connect: { method: 'GET', path: '/device/v1/:uuid/connect' },
  /** A WebSocket the agent dials for one shell or tunnel stream the server asked for (remote-access.ts). */
  stream: { method: 'GET', path: '/device/v1/:uuid/streams/:id' },
  registryToken: { method: 'GET', path: '/auth/v1/token' },
  /** balena's delta endpoint (balenaOS devices); not served yet. Flotilla agents use the three below (deltas.ts). */
  delta: { method: 'GET', path: '/api/v3/delta' },
  /** Ask for a delta between two images of the device's fleet: 200 ready (descriptor) or 202 pending. */
  deltaRequest: { method: 'POST', path: '/device/v1/:uuid/deltas' },
  /** The delta's bytes, with Range; `:digest` must still be the pair's delta (404 otherwise: ask again). */
  deltaDownload: { method: 'GET', path: '/device/v1/:uuid/deltas/:from/:to/:digest' },
  /** What became of a delta (applied or fell back to a pull), with the bytes it saved. */
  deltaOutcome: { method: 'POST', path: '/device/v1/:uuid/delta-outcomes' },
  /** The raw slot image of an OS release the device may run (target state `os.url`), with Range. */
  osImage: { method: 'GET', path: '/device/v1/:uuid/os-images/:hash' },
  /**
   * Ask for the delta from the booted OS to an OS release's slot image (os-deltas.ts): 200 ready, 202 pending,
   * DELTA_UNAVAILABLE, or OS_RELEASE_NOT_FOUND for a release the device may not download.
   */
  osDeltaRequest: { method: 'POST', path: '/device/v1/:uuid/os-deltas' },
  /** The OS delta's bytes, with Range; `:from`/`:to` are the slot images' hex sha256 (DELTA_NOT_FOUND: ask again). */
  osDeltaDownload: { method: 'GET', path: '/device/v1/:uuid/os-deltas/:from/:to/:digest' },
} as const;

export const API_PREFIX = '/api/v1';

export const LOCAL_API_ROUTES = {
  ping: { method: 'GET', path: '/ping' },
  healthy: { method: 'GET', path: '/v1/healthy' },
  blink: { method: 'POST', path: '/v1/blink' },
  update: { method: 'POST', path: '/v1/update' },
  restart: { method: 'POST', path: '/v1/restart' },
  reboot: { method: 'POST', path: '/v1/reboot' },
  shutdown: { method: 'POST', path: '/v1/shutdown' },
  purge: { method: 'POST', path: '/v1/purge' },
  device: { method: 'GET', path: '/v1/device' },
  hostConfig: { method: 'GET', path: '/v1/device/host-config' },
  applicationsState: { method: 'GET', path: '/v2/applications/state' },
  stateStatus: { method: 'GET', path: '/v2/state/status' },
  version: { method: 'GET', path: '/v2/version' },
  localTargetState: { method: 'GET', path: '/v2/local/target-state' },
  localLogs: { method: 'GET', path: '/v2/local/logs' },
} as const;

/** `path('/device/v3/:uuid/state', { uuid })` → `/device/v3/<uuid>/state`, each value URI-encoded. */
export function path(template: string, params: Record<string, string | number>): string {
  return template.replace(/:([a-zA-Z]+)/g, (_, key: string) => {
    const value = params[key];
    if (value === undefined) throw new Error(`missing route parameter ${key} for ${template}`);
    return encodeURIComponent(String(value));
  });
}
