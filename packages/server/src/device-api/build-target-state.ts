import { toTargetConfigName } from '@flotilla/protocol';
import type {
  ComposeFile,
  ComposeService,
  TargetDevice,
  TargetNetwork,
  TargetService,
  TargetState,
  TargetVolume,
} from '@flotilla/protocol';

/** Everything target state is computed from; loading it is the caller's business, so this stays pure. */
export interface TargetStateInput {
  device: { uuid: string; name: string };
  fleet: { id: number; uuid: string; name: string };
  release: {
    id: number;
    commit: string;
    composition: ComposeFile;
    services: { id: number; name: string; image: string | null }[];
  } | null;
  /** Variables in ascending precedence within their kind; `service` null means every service. */
  fleetEnv: { name: string; value: string; service: string | null }[];
  deviceEnv: { name: string; value: string; service: string | null }[];
  fleetConfig: { name: string; value: string }[];
  deviceConfig: { name: string; value: string }[];
}

function toRecord(
  list: string[] | Record<string, string | number | boolean | null> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(list)) {
    for (const item of list) {
      const eq = item.indexOf('=');
      if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  } else if (list) {
    // A null value in compose means "take it from the build host"; there is no such host on a device.
    for (const [k, v] of Object.entries(list)) if (v !== null) out[k] = String(v);
  }
  return out;
}

/** Compose env < fleet < device < fleet-service < device-service: the later, more specific value wins. */
export function mergeEnvironment(
  service: string,
  compose: ComposeService['environment'],
  input: Pick<TargetStateInput, 'fleetEnv' | 'deviceEnv'>,
): Record<string, string> {
  const env = toRecord(compose);
  for (const layer of [
    input.fleetEnv.filter((v) => v.service === null),
    input.deviceEnv.filter((v) => v.service === null),
    input.fleetEnv.filter((v) => v.service === service),
    input.deviceEnv.filter((v) => v.service === service),
  ]) {
    for (const v of layer) env[v.name] = v.value;
  }
  return env;
}

function composition(service: ComposeService): Record<string, unknown> {
  const { build: _build, image: _image, environment: _environment, labels: _labels, ...rest } = service;
  return rest;
}

function volume(v: ComposeFile['volumes'] extends Record<string, infer V> | undefined ? V : never): TargetVolume {
  return { driver: v?.driver ?? 'local', driver_opts: v?.driver_opts ?? {}, labels: toRecord(v?.labels) };
}

function network(n: ComposeFile['networks'] extends Record<string, infer V> | undefined ? V : never): TargetNetwork {
  const out: TargetNetwork = {
    driver: n?.driver ?? 'bridge',
    driver_opts: n?.driver_opts ?? {},
    labels: toRecord(n?.labels),
    ipam: { driver: n?.ipam?.driver ?? 'default', config: n?.ipam?.config ?? [], options: {} },
  };
  if (n?.internal !== undefined) out.internal = n.internal;
  if (n?.enable_ipv6 !== undefined) out.enable_ipv6 = n.enable_ipv6;
  return out;
}

export function buildTargetState(input: TargetStateInput): TargetState {
  const config: Record<string, string> = {};
  for (const v of [...input.fleetConfig, ...input.deviceConfig]) config[toTargetConfigName(v.name)] = v.value;
  const releases: TargetDevice['apps'][string]['releases'] = {};
  const release = input.release;
  if (release) {
    const services: Record<string, TargetService> = {};
    for (const s of release.services) {
      const compose = release.composition.services[s.name] ?? {};
      services[s.name] = {
        id: s.id,
        image_id: s.id,
        image: s.image ?? compose.image ?? '',
        running: true,
        environment: mergeEnvironment(s.name, compose.environment, input),
        labels: toRecord(compose.labels),
        composition: composition(compose),
      };
    }
    const volumes: Record<string, TargetVolume> = {};
    for (const [name, v] of Object.entries(release.composition.volumes ?? {})) volumes[name] = volume(v);
    const networks: Record<string, TargetNetwork> = {};
    for (const [name, n] of Object.entries(release.composition.networks ?? {})) networks[name] = network(n);
    releases[release.commit] = { id: release.id, services, volumes, networks };
  }
  return {
    [input.device.uuid]: {
      name: input.device.name,
      config,
      apps: {
        [input.fleet.uuid]: { id: input.fleet.id, name: input.fleet.name, class: 'fleet', is_host: false, releases },
      },
    },
  };
}
