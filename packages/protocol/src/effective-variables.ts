import type { ComposeService } from './compose.js';
import { configVarKey, toTargetConfigName } from './config-vars.js';

/**
 * How a device's variables become what its services and its agent get: the one implementation of the merge, used
 * by the server to build target state and by the dashboard to show where each value comes from.
 *
 * Environment of a service, later layers winning (the balena order): the release's compose `environment` < fleet
 * (all services) < device (all services) < fleet, this service < device, this service. So a device-wide value
 * does NOT beat a fleet value set for one service.
 * Config: fleet < device, per setting; `FLOTILLA_X`, `BALENA_X` and `RESIN_X` are one setting, sent as `BALENA_X`.
 */

/** The layers of a service's environment, least specific first: their order IS the merge order. */
export const ENV_SOURCES = ['release', 'fleet', 'device', 'fleet-service', 'device-service'] as const;
export type EnvSource = (typeof ENV_SOURCES)[number];
export const CONFIG_SOURCES = ['fleet', 'device'] as const;
export type ConfigSource = (typeof CONFIG_SOURCES)[number];

/** A variable as stored: `service` null applies to every service. */
export interface VariableRow {
  readonly name: string;
  readonly value: string;
  readonly service: string | null;
}

/** A fleet's and a device's environment variables, each list in the order it was written (later wins on a tie). */
export interface EnvInput {
  readonly fleetEnv: readonly VariableRow[];
  readonly deviceEnv: readonly VariableRow[];
}

export interface ConfigInput {
  readonly fleetConfig: readonly { name: string; value: string }[];
  readonly deviceConfig: readonly { name: string; value: string }[];
}

/** One value a name takes in one layer. */
export interface LayerValue<S extends string> {
  readonly name: string;
  readonly value: string;
  readonly source: S;
}

/** A name's effective value, where it comes from, and the values it overrode (least specific first). */
export interface EffectiveVariable<S extends string> extends LayerValue<S> {
  readonly overridden: readonly LayerValue<S>[];
}

/**
 * A compose list (`["A=1", …]`) or map as name → string. A null map value means "from the build host's
 * environment", and a device has no such host: it is left out, as is a list item without `=`.
 */
export function composeRecord(
  list: readonly string[] | Readonly<Record<string, string | number | boolean | null>> | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(list)) {
    for (const item of list as readonly string[]) {
      const eq = item.indexOf('=');
      if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
    }
  } else if (list) {
    for (const [k, v] of Object.entries(list)) if (v !== null) out[k] = String(v);
  }
  return out;
}

/** The layers of `service`'s environment in merge order. `service` null: only the all-services layers apply. */
function environmentLayers(
  service: string | null,
  compose: ComposeService['environment'],
  input: EnvInput,
): [EnvSource, Iterable<readonly [string, string]>][] {
  const rows = (list: readonly VariableRow[], scope: string | null) =>
    list.filter((v) => v.service === scope).map((v) => [v.name, v.value] as const);
  const layers: [EnvSource, Iterable<readonly [string, string]>][] = [
    ['release', Object.entries(composeRecord(compose))],
    ['fleet', rows(input.fleetEnv, null)],
    ['device', rows(input.deviceEnv, null)],
  ];
  if (service !== null)
    layers.push(['fleet-service', rows(input.fleetEnv, service)], ['device-service', rows(input.deviceEnv, service)]);
  return layers;
}

/** The environment target state gives `service`: every layer folded, the later winning. */
export function mergeEnvironment(
  service: string,
  compose: ComposeService['environment'],
  input: EnvInput,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, entries] of environmentLayers(service, compose, input)) for (const [k, v] of entries) env[k] = v;
  return env;
}

/**
 * The same merge as mergeEnvironment, explained: for each name (sorted), the value that wins, its layer, and what
 * it overrode. `service` null explains what every service shares (release and per-service layers left out).
 * INVARIANT: for a service, the names and winning values equal mergeEnvironment's (a test holds them together).
 */
export function effectiveEnvironment(
  service: string | null,
  compose: ComposeService['environment'],
  input: EnvInput,
): EffectiveVariable<EnvSource>[] {
  const byName = new Map<string, LayerValue<EnvSource>[]>();
  for (const [source, entries] of environmentLayers(service, service === null ? undefined : compose, input)) {
    for (const [name, value] of entries) {
      const chain = byName.get(name) ?? [];
      // Two rows of one layer (written twice): the later is that layer's value, as in the fold.
      if (chain.at(-1)?.source === source) chain.pop();
      chain.push({ name, value, source });
      byName.set(name, chain);
    }
  }
  return explained(byName);
}

/** The config target state gives the device: `BALENA_<key>` → value, the device's beating the fleet's. */
export function mergeConfig(input: ConfigInput): Record<string, string> {
  const config: Record<string, string> = {};
  for (const [, rows] of configLayers(input)) for (const v of rows) config[toTargetConfigName(v.name)] = v.value;
  return config;
}

function configLayers(input: ConfigInput): [ConfigSource, ConfigInput['fleetConfig']][] {
  return [
    ['fleet', input.fleetConfig],
    ['device', input.deviceConfig],
  ];
}

/** mergeConfig explained, per setting (sorted by its key); `name` is the spelling its winner was written with. */
export function effectiveConfig(input: ConfigInput): EffectiveVariable<ConfigSource>[] {
  const byKey = new Map<string, LayerValue<ConfigSource>[]>();
  for (const [source, rows] of configLayers(input)) {
    for (const { name, value } of rows) {
      const key = configVarKey(name);
      const chain = byKey.get(key) ?? [];
      if (chain.at(-1)?.source === source) chain.pop();
      chain.push({ name, value, source });
      byKey.set(key, chain);
    }
  }
  return explained(byKey);
}

function explained<S extends string>(chains: Map<string, LayerValue<S>[]>): EffectiveVariable<S>[] {
  return [...chains.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, chain]) => {
      const winner = chain[chain.length - 1] as LayerValue<S>;
      return { ...winner, overridden: chain.slice(0, -1) };
    });
}
