import { createHash } from 'node:crypto';
import type Docker from 'dockerode';
import {
  DEFAULT_HANDOVER_TIMEOUT_MS,
  DEFAULT_UPDATE_STRATEGY,
  LABELS,
  UPDATE_STRATEGIES,
  type TargetDevice,
  type TargetService as WireService,
  type UpdateStrategy,
} from '@flotilla/protocol';
import type { TargetApp, TargetModel, TargetService } from '../reconcile/state.js';
import { featureGrants } from './features.js';
import { NAMESPACE_LABEL, containerName, networkName, volumeName } from './names.js';
import { durationToNs, parsePorts } from './ports.js';

/** What the agent adds to every service besides the target: identity, host paths, credentials. */
export interface ModelContext {
  namespace: string;
  deviceUuid: string;
  deviceType: string;
  apiEndpoint: string | undefined;
  deviceApiKey: string | undefined;
  dockerSocket: string;
  /** Where the local device API listens; null when it is disabled (then the supervisor-api feature grants nothing). */
  supervisorApi: { port: number; key: string } | null;
  /** Host folder bind-mounted at /tmp/balena and /tmp/resin (holds updates.lock and handover-complete). */
  serviceLockDir: (appId: number, serviceName: string) => string;
}

const list = (value: string | string[] | undefined): string[] | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value : ['/bin/sh', '-c', value];

function strategyOf(labels: Record<string, string>): UpdateStrategy {
  const value = labels[LABELS.updateStrategy];
  return (UPDATE_STRATEGIES as readonly string[]).includes(value ?? '')
    ? (value as UpdateStrategy)
    : DEFAULT_UPDATE_STRATEGY;
}

function dependsOn(value: WireService['composition']['depends_on']): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? [...value] : Object.keys(value);
}

function healthcheck(hc: WireService['composition']['healthcheck']): Docker.HealthConfig | undefined {
  if (hc === undefined) return undefined;
  if (hc.disable) return { Test: ['NONE'] };
  const test = hc.test === undefined ? undefined : Array.isArray(hc.test) ? hc.test : ['CMD-SHELL', hc.test];
  return {
    ...(test ? { Test: test } : {}),
    ...(hc.interval ? { Interval: durationToNs(hc.interval) } : {}),
    ...(hc.timeout ? { Timeout: durationToNs(hc.timeout) } : {}),
    ...(hc.start_period ? { StartPeriod: durationToNs(hc.start_period) } : {}),
    ...(hc.retries !== undefined ? { Retries: hc.retries } : {}),
  };
}

/**
 * What only one container can hold at a time, as text for the logs: published host ports (a fixed host port; an
 * ephemeral one, `"80"` or `":80"`, never clashes), host devices, host networking (whatever it listens on is the
 * host's). Undefined when none: then hand-over may run the old and the new container side by side.
 */
export function exclusiveResource(
  bindings: Record<string, Array<{ HostIp: string; HostPort: string }>>,
  devices: readonly string[],
  hostNetwork: boolean,
): string | undefined {
  const ports = Object.entries(bindings).flatMap(([port, list]) =>
    list.filter((b) => b.HostPort !== '').map((b) => `${b.HostIp ? `${b.HostIp}:` : ''}${b.HostPort}->${port}`),
  );
  const held = [
    ...(ports.length > 0 ? [`host port ${ports.join(', ')}`] : []),
    ...(devices.length > 0 ? [`device ${devices.map((d) => d.split(':')[0]).join(', ')}`] : []),
    ...(hostNetwork ? ['host networking'] : []),
  ];
  return held.length > 0 ? held.join('; ') : undefined;
}

/** Stable JSON (sorted keys) so the hash does not depend on key order in target state. */
export function stableStringify(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableStringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableStringify(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Labels that describe which release a container belongs to; they change without the container changing. */
const METADATA_LABELS: readonly string[] = [
  LABELS.releaseCommit,
  LABELS.releaseId,
  LABELS.imageId,
  LABELS.serviceId,
  LABELS.configHash,
];

export function configHashOf(spec: Docker.ContainerCreateOptions): string {
  const labels = Object.fromEntries(Object.entries(spec.Labels ?? {}).filter(([k]) => !METADATA_LABELS.includes(k)));
  const { name: _name, Image: _image, ...rest } = spec;
  return createHash('sha256')
    .update(stableStringify({ ...rest, Labels: labels }))
    .digest('hex');
}

interface ServiceInput {
  appId: number;
  appUuid: string;
  appName: string;
  releaseId: number;
  commit: string;
  serviceName: string;
  service: WireService;
  releaseNetworks: string[];
}

export function buildService(input: ServiceInput, ctx: ModelContext): TargetService {
  const { appId, serviceName, service } = input;
  const c = service.composition;
  const networkMode = c.network_mode;
  const hostNetwork = networkMode === 'host';
  const requested = c.networks === undefined ? [] : Array.isArray(c.networks) ? c.networks : Object.keys(c.networks);
  const networks =
    networkMode !== undefined
      ? []
      : (requested.length > 0 ? requested : ['default']).map((n) => networkName(ctx.namespace, appId, n));
  const grant = featureGrants(service.labels, { ...ctx, hostNetwork });

  // Only named volumes are allowed: arbitrary host binds are what the feature labels replace.
  const volumes: string[] = [];
  const binds: string[] = [];
  for (const entry of c.volumes ?? []) {
    const [source, target, mode] = entry.split(':');
    if (!source || !target || source.startsWith('/') || source.startsWith('.')) continue;
    const name = volumeName(ctx.namespace, appId, source);
    volumes.push(name);
    binds.push(mode ? `${name}:${target}:${mode}` : `${name}:${target}`);
  }
  const lockDir = ctx.serviceLockDir(appId, serviceName);
  binds.push(`${lockDir}:/tmp/balena`, `${lockDir}:/tmp/resin`, ...grant.binds);

  const env: Record<string, string> = {
    ...service.environment,
    BALENA: '1',
    RESIN: '1',
    BALENA_APP_ID: String(appId),
    BALENA_APP_UUID: input.appUuid,
    BALENA_APP_NAME: input.appName,
    BALENA_SERVICE_NAME: serviceName,
    BALENA_DEVICE_UUID: ctx.deviceUuid,
    BALENA_DEVICE_TYPE: ctx.deviceType,
    RESIN_APP_ID: String(appId),
    RESIN_SERVICE_NAME: serviceName,
    RESIN_DEVICE_UUID: ctx.deviceUuid,
    ...grant.env,
  };
  const ports = parsePorts(c.ports ?? []);
  for (const port of c.expose ?? []) ports.exposed[String(port).includes('/') ? String(port) : `${port}/tcp`] = {};
  const restart = c.restart ?? 'always';
  const strategy = strategyOf(service.labels);
  const timeoutLabel = Number(service.labels[LABELS.handoverTimeout]);

  const labels: Record<string, string> = {
    ...service.labels,
    [LABELS.supervised]: '1',
    [LABELS.appId]: String(appId),
    [LABELS.appUuid]: input.appUuid,
    [LABELS.serviceName]: serviceName,
    [LABELS.serviceId]: String(service.id),
    [LABELS.releaseCommit]: input.commit,
    [LABELS.releaseId]: String(input.releaseId),
    [LABELS.imageId]: String(service.image_id),
    ...(ctx.namespace ? { [NAMESPACE_LABEL]: ctx.namespace } : {}),
  };
  const hostConfig: Docker.HostConfig = {
    Binds: binds,
    RestartPolicy: { Name: restart === 'no' ? '' : restart },
    NetworkMode: networkMode ?? networks[0] ?? 'bridge',
    PortBindings: ports.bindings,
    Privileged: c.privileged ?? false,
    Devices: (c.devices ?? []).map((d) => {
      const [host, container, perms] = d.split(':');
      return { PathOnHost: host ?? d, PathInContainer: container ?? host ?? d, CgroupPermissions: perms ?? 'rwm' };
    }),
    CapAdd: c.cap_add ?? [],
    CapDrop: c.cap_drop ?? [],
    ExtraHosts: [...(c.extra_hosts ?? []), ...grant.extraHosts],
    ...(c.dns !== undefined ? { Dns: Array.isArray(c.dns) ? c.dns : [c.dns] } : {}),
    ...(c.init !== undefined ? { Init: c.init } : {}),
    ...(c.read_only !== undefined ? { ReadonlyRootfs: c.read_only } : {}),
    ...(c.cpu_shares !== undefined ? { CpuShares: c.cpu_shares } : {}),
    ...(c.security_opt ? { SecurityOpt: c.security_opt } : {}),
    ...(c.pid ? { PidMode: c.pid } : {}),
    ...(c.ipc ? { IpcMode: c.ipc } : {}),
  };
  const spec: Docker.ContainerCreateOptions = {
    Image: service.image,
    Env: Object.entries(env)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${v}`),
    Labels: labels,
    ...(c.command !== undefined ? { Cmd: list(c.command) } : {}),
    ...(c.entrypoint !== undefined ? { Entrypoint: c.entrypoint } : {}),
    ...(c.working_dir ? { WorkingDir: c.working_dir } : {}),
    ...(c.user ? { User: c.user } : {}),
    ...(c.hostname ? { Hostname: c.hostname } : {}),
    ...(c.tty !== undefined ? { Tty: c.tty } : {}),
    ...(c.stdin_open !== undefined ? { OpenStdin: c.stdin_open } : {}),
    ...(c.stop_signal ? { StopSignal: c.stop_signal } : {}),
    ...(c.stop_grace_period ? { StopTimeout: Math.ceil(durationToNs(c.stop_grace_period) / 1e9) } : {}),
    ...(healthcheck(c.healthcheck) ? { Healthcheck: healthcheck(c.healthcheck) } : {}),
    ExposedPorts: ports.exposed,
    HostConfig: hostConfig,
    ...(networks[0] ? { NetworkingConfig: { EndpointsConfig: { [networks[0]]: { Aliases: [serviceName] } } } } : {}),
  };
  const configHash = configHashOf(spec);
  labels[LABELS.configHash] = configHash;
  const name = containerName(ctx.namespace, serviceName, input.releaseId, configHash);
  spec.name = name;
  return {
    appId,
    appUuid: input.appUuid,
    serviceName,
    serviceId: service.id,
    imageId: service.image_id,
    releaseId: input.releaseId,
    commit: input.commit,
    image: service.image,
    running: service.running,
    strategy,
    handoverTimeoutMs: Number.isFinite(timeoutLabel) && timeoutLabel > 0 ? timeoutLabel : DEFAULT_HANDOVER_TIMEOUT_MS,
    dependsOn: dependsOn(c.depends_on),
    exclusive: exclusiveResource(ports.bindings, c.devices ?? [], hostNetwork),
    restart,
    containerName: name,
    configHash,
    spec,
    networks,
    extraNetworks: networks.slice(1),
    volumes,
  };
}

/** Target state (one device) → the planner's model. Pure. */
export function buildTargetModel(device: TargetDevice, ctx: ModelContext): TargetModel {
  const apps: TargetApp[] = [];
  for (const [appUuid, app] of Object.entries(device.apps)) {
    // INVARIANT: at most one release per app in target state; if more arrive, the first key wins deterministically.
    const commits = Object.keys(app.releases).sort();
    const commit = commits[0] ?? null;
    const release = commit === null ? undefined : app.releases[commit];
    const model: TargetApp = {
      appId: app.id,
      appUuid,
      name: app.name,
      commit,
      releaseId: release?.id ?? null,
      services: [],
      volumes: [],
      networks: [],
    };
    if (release && commit) {
      const networkNames = new Set(Object.keys(release.networks));
      const services = Object.entries(release.services);
      const needsDefault = services.some(
        ([, s]) =>
          s.composition.network_mode === undefined &&
          (s.composition.networks === undefined ||
            (Array.isArray(s.composition.networks) && s.composition.networks.length === 0)),
      );
      if (needsDefault) networkNames.add('default');
      // Networks a service names without the release declaring them get the defaults (like undeclared volumes).
      for (const [, s] of services) {
        const n = s.composition.networks;
        for (const name of n === undefined ? [] : Array.isArray(n) ? n : Object.keys(n)) networkNames.add(name);
      }
      for (const name of [...networkNames].sort()) {
        const n = release.networks[name];
        const fullName = networkName(ctx.namespace, app.id, name);
        const spec: Docker.NetworkCreateOptions = {
          Name: fullName,
          Driver: n?.driver ?? 'bridge',
          ...(n?.driver_opts ? { Options: n.driver_opts } : {}),
          ...(n?.internal !== undefined ? { Internal: n.internal } : {}),
          ...(n?.enable_ipv6 !== undefined ? { EnableIPv6: n.enable_ipv6 } : {}),
          ...(n?.ipam && n.ipam.config.length > 0
            ? {
                IPAM: {
                  Driver: n.ipam.driver,
                  Config: n.ipam.config.map((c) => ({
                    ...(c.subnet ? { Subnet: c.subnet } : {}),
                    ...(c.gateway ? { Gateway: c.gateway } : {}),
                    ...(c.ip_range ? { IPRange: c.ip_range } : {}),
                  })),
                },
              }
            : {}),
          Labels: {
            ...(n?.labels ?? {}),
            [LABELS.supervised]: '1',
            [LABELS.appId]: String(app.id),
            [LABELS.appUuid]: appUuid,
            ...(ctx.namespace ? { [NAMESPACE_LABEL]: ctx.namespace } : {}),
          },
        };
        // The app uuid label is metadata; the hash covers what the engine would build differently.
        const configHash = createHash('sha256')
          .update(stableStringify({ ...spec, Labels: { ...spec.Labels, [LABELS.appUuid]: '' } }))
          .digest('hex');
        (spec.Labels as Record<string, string>)[LABELS.configHash] = configHash;
        model.networks.push({ appId: app.id, name: fullName, configHash, spec });
      }
      const volumeNames = new Set(Object.keys(release.volumes));
      for (const [, s] of services) {
        for (const entry of s.composition.volumes ?? []) {
          const source = entry.split(':')[0];
          if (source && !source.startsWith('/') && !source.startsWith('.') && entry.includes(':'))
            volumeNames.add(source);
        }
      }
      for (const name of [...volumeNames].sort()) {
        const v = release.volumes[name];
        const fullName = volumeName(ctx.namespace, app.id, name);
        model.volumes.push({
          appId: app.id,
          name: fullName,
          spec: {
            Name: fullName,
            Driver: v?.driver ?? 'local',
            DriverOpts: v?.driver_opts ?? {},
            Labels: {
              ...(v?.labels ?? {}),
              [LABELS.supervised]: '1',
              [LABELS.appId]: String(app.id),
              [LABELS.appUuid]: appUuid,
              ...(ctx.namespace ? { [NAMESPACE_LABEL]: ctx.namespace } : {}),
            },
          },
        });
      }
      for (const [serviceName, service] of services.sort(([a], [b]) => (a < b ? -1 : 1))) {
        model.services.push(
          buildService(
            {
              appId: app.id,
              appUuid,
              appName: app.name,
              releaseId: release.id,
              commit,
              serviceName,
              service,
              releaseNetworks: [...networkNames],
            },
            ctx,
          ),
        );
      }
    }
    apps.push(model);
  }
  return { apps: apps.sort((a, b) => a.appId - b.appId) };
}
