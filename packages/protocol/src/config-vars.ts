/**
 * Config variables steer the agent and the host (poll interval, deltas, host config). They travel in target state
 * with a `BALENA_` prefix (what balenaOS devices understand); users may also write `FLOTILLA_` or the legacy
 * `RESIN_`. All three name the same setting.
 */
export const CONFIG_VAR_PREFIXES = ['FLOTILLA_', 'BALENA_', 'RESIN_'] as const;

export function isConfigVarName(name: string): boolean {
  return CONFIG_VAR_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** `FLOTILLA_SUPERVISOR_POLL_INTERVAL` / `RESIN_…` / `BALENA_…` → `SUPERVISOR_POLL_INTERVAL`. */
export function configVarKey(name: string): string {
  for (const prefix of CONFIG_VAR_PREFIXES) {
    if (name.startsWith(prefix)) return name.slice(prefix.length);
  }
  return name;
}

/** The form a config variable takes in target state: `BALENA_<key>`. */
export function toTargetConfigName(name: string): string {
  return `BALENA_${configVarKey(name)}`;
}

/** Well-known config keys (without prefix) and their defaults as the agent applies them. */
export const CONFIG_DEFAULTS = {
  SUPERVISOR_POLL_INTERVAL: '900000',
  /** Flotilla deltas are on unless a fleet or device sets this to 0 (BALENA_SUPERVISOR_DELTA is the same key). */
  SUPERVISOR_DELTA: '1',
  SUPERVISOR_LOCAL_MODE: '0',
  SUPERVISOR_PERSISTENT_LOGGING: '0',
  SUPERVISOR_OVERRIDE_LOCK: '0',
  SUPERVISOR_INSTANT_UPDATE_TRIGGER: '1',
  SUPERVISOR_HARDWARE_METRICS: '1',
  /** Flotilla agents: seconds a newly applied release is watched before it counts as good (0: no self-rollback). */
  ROLLBACK_SOAK_SECONDS: '300',
} as const satisfies Record<string, string>;
