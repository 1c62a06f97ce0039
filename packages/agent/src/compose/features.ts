/**
 * `io.balena.features.*` labels grant host access instead of arbitrary bind mounts. Each feature maps to binds
 * and environment; everything else a service asks of the host is refused.
 */
export interface FeatureContext {
  dockerSocket: string;
  apiEndpoint: string | undefined;
  deviceApiKey: string | undefined;
  supervisorApi: { port: number; key: string } | null;
  hostNetwork: boolean;
}

export interface FeatureGrant {
  binds: string[];
  env: Record<string, string>;
  extraHosts: string[];
}

const enabled = (labels: Record<string, string>, name: string): boolean => {
  const value = labels[`io.balena.features.${name}`];
  return value === '1' || value === 'true';
};

export function featureGrants(labels: Record<string, string>, ctx: FeatureContext): FeatureGrant {
  const grant: FeatureGrant = { binds: [], env: {}, extraHosts: [] };
  if (enabled(labels, 'balena-socket')) {
    grant.binds.push(`${ctx.dockerSocket}:/var/run/balena-engine.sock`, `${ctx.dockerSocket}:/var/run/docker.sock`);
    grant.env.DOCKER_HOST = 'unix:///var/run/balena-engine.sock';
  }
  if (enabled(labels, 'dbus')) {
    grant.binds.push('/run/dbus:/host/run/dbus');
    grant.env.DBUS_SYSTEM_BUS_ADDRESS = 'unix:path=/host/run/dbus/system_bus_socket';
  }
  if (enabled(labels, 'kernel-modules')) grant.binds.push('/lib/modules:/lib/modules');
  if (enabled(labels, 'firmware')) grant.binds.push('/lib/firmware:/lib/firmware');
  if (enabled(labels, 'sysfs')) grant.binds.push('/sys:/sys');
  if (enabled(labels, 'procfs')) grant.binds.push('/proc:/proc');
  if (enabled(labels, 'journal-logs')) {
    grant.binds.push(
      '/var/log/journal:/var/log/journal:ro',
      '/run/log/journal:/run/log/journal:ro',
      '/etc/machine-id:/etc/machine-id:ro',
    );
  }
  if (enabled(labels, 'supervisor-api') && ctx.supervisorApi) {
    // On a bridge network the host is reachable through the gateway alias; with network_mode host, on loopback.
    const host = ctx.hostNetwork ? '127.0.0.1' : 'host.docker.internal';
    if (!ctx.hostNetwork) grant.extraHosts.push('host.docker.internal:host-gateway');
    const address = `http://${host}:${ctx.supervisorApi.port}`;
    for (const prefix of ['BALENA_', 'RESIN_']) {
      grant.env[`${prefix}SUPERVISOR_ADDRESS`] = address;
      grant.env[`${prefix}SUPERVISOR_HOST`] = host;
      grant.env[`${prefix}SUPERVISOR_PORT`] = String(ctx.supervisorApi.port);
      grant.env[`${prefix}SUPERVISOR_API_KEY`] = ctx.supervisorApi.key;
    }
  }
  if (enabled(labels, 'balena-api') && ctx.apiEndpoint && ctx.deviceApiKey) {
    grant.env.BALENA_API_URL = ctx.apiEndpoint;
    grant.env.BALENA_API_KEY = ctx.deviceApiKey;
    grant.env.RESIN_API_KEY = ctx.deviceApiKey;
  }
  return grant;
}
