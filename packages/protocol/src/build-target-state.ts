import type { ComposeFile, ComposeService } from './compose.js';
import type { TargetDevice, TargetNetwork, TargetService, TargetState, TargetVolume } from './device-api.js';
import type { TargetOs } from './os-releases.js';
import { composeRecord, mergeConfig, mergeEnvironment } from './effective-variables.js';
import type { UpdateWindow } from './update-window.js';

/**
 * Everything target state is computed from; loading it is the caller's business, so this stays pure. Shared by the
 * server (every poll) and the CLI (`os preload`, which writes a release's target into a disk image), so both build
 * the very same document.
 */
export interface TargetStateInput {
  device: { uuid: string; name: string };
  fleet: { id: number; uuid: string; name: string };
  release: {
    id: number;
    commit: string;
    composition: ComposeFile;
    services: { id: number; name: string; image: string | null }[];
  } | null;
  /**
   * Variables in the order they were written; `service` null means every service. How they merge is protocol's
   * effective-variables.ts, the same code the dashboard explains a device's variables with.
   */
  fleetEnv: { name: string; value: string; service: string | null }[];
  deviceEnv: { name: string; value: string; service: string | null }[];
  fleetConfig: { name: string; value: string }[];
  deviceConfig: { name: string; value: string }[];
  /** The device's maintenance window (its own, else its fleet's); null or absent: none. */
  updateWindow?: UpdateWindow | null;
  /** The host OS the device must run (the server's os-releases/); absent: none, and the field is left out. */
  os?: TargetOs | undefined;
}

function composition(service: ComposeService): Record<string, unknown> {
  const { build: _build, image: _image, environment: _environment, labels: _labels, ...rest } = service;
  return rest;
}

function volume(v: ComposeFile['volumes'] extends Record<string, infer V> | undefined ? V : never): TargetVolume {
  return { driver: v?.driver ?? 'local', driver_opts: v?.driver_opts ?? {}, labels: composeRecord(v?.labels) };
}

function network(n: ComposeFile['networks'] extends Record<string, infer V> | undefined ? V : never): TargetNetwork {
  const out: TargetNetwork = {
    driver: n?.driver ?? 'bridge',
    driver_opts: n?.driver_opts ?? {},
    labels: composeRecord(n?.labels),
    ipam: { driver: n?.ipam?.driver ?? 'default', config: n?.ipam?.config ?? [], options: {} },
  };
  if (n?.internal !== undefined) out.internal = n.internal;
  if (n?.enable_ipv6 !== undefined) out.enable_ipv6 = n.enable_ipv6;
  return out;
}

/**
 * INVARIANT (config): the device's effective configuration, fleet < device, and nothing else: no default is sent
 * for a setting nobody set. The balena Supervisor applies every setting missing from `config` at its own default,
 * but first, once per provisioning, it posts each value it was provisioned with that differs from that default
 * (config.json's `appUpdatePollInterval`, `persistentLogging`, board settings …) as a device config variable, and
 * only for settings `config` lacks. A default sent here (as balenaCloud sends its poll interval) would keep it from
 * posting the provisioned value, and the first apply would reset it. Flotilla agents read a missing setting from
 * config.json, then their own default.
 */
export function buildTargetState(input: TargetStateInput): TargetState {
  const config = mergeConfig(input);
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
        labels: composeRecord(compose.labels),
        composition: composition(compose),
      };
    }
    const volumes: Record<string, TargetVolume> = {};
    for (const [name, v] of Object.entries(release.composition.volumes ?? {})) volumes[name] = volume(v);
    const networks: Record<string, TargetNetwork> = {};
    for (const [name, n] of Object.entries(release.composition.networks ?? {})) networks[name] = network(n);
    releases[release.commit] = { id: release.id, services, volumes, networks };
  }
  const device: TargetDevice = {
    name: input.device.name,
    config,
    apps: {
      [input.fleet.uuid]: { id: input.fleet.id, name: input.fleet.name, class: 'fleet', is_host: false, releases },
    },
  };
  // Only when there is one: a device without a window gets the very target (and ETag) it got before windows existed.
  if (input.updateWindow) device.update_window = input.updateWindow;
  if (input.os) device.os = input.os;
  return { [input.device.uuid]: device };
}
