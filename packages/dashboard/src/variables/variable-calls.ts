import { type EnvVar, USER_ROUTES as R } from '@flotilla/protocol';
import type { DashboardApi } from '../api/dashboard-api.js';
import type { Draft, VariableKind } from './variable-input.js';

/** Whose variables: a fleet's (by slug) or one device's own (by UUID). */
export type VariableOwner = { fleet: string } | { device: string };

export interface VariableCalls {
  list(): Promise<EnvVar[]>;
  /** Adds the variable, or replaces the value of the one with this name (and service). */
  set(draft: Draft): Promise<EnvVar>;
  /** Removes exactly one variable: the one of `service`, or (null) the one for all services, never both. */
  remove(name: string, service: string | null): Promise<void>;
}

/** The user API routes for one owner's variables of one kind, behind one shape the pages share. */
export function variableCalls(api: DashboardApi, owner: VariableOwner, kind: VariableKind): VariableCalls {
  const one = (name: string, value: string, service: string) => ({ name, value, ...(service ? { service } : {}) });
  // Without ?service=, a delete removes the name in every scope; exact=1 keeps it to the all-services one.
  const scope = (service: string | null) => (service === null ? { exact: '1' as const } : { service });
  if ('fleet' in owner) {
    const params = { slug: owner.fleet };
    if (kind === 'env')
      return {
        list: async () => (await api.call(R.listFleetEnv, { params })).items,
        set: (d) => api.call(R.setFleetEnv, { params, body: one(d.name, d.value, d.service) }),
        remove: (name, service) => api.call(R.deleteFleetEnv, { params: { ...params, name }, query: scope(service) }),
      };
    return {
      list: async () => (await api.call(R.listFleetConfig, { params })).items,
      set: (d) => api.call(R.setFleetConfig, { params, body: { name: d.name, value: d.value } }),
      remove: (name) => api.call(R.deleteFleetConfig, { params: { ...params, name } }),
    };
  }
  const params = { uuid: owner.device };
  if (kind === 'env')
    return {
      list: async () => (await api.call(R.listDeviceEnv, { params })).items,
      set: (d) => api.call(R.setDeviceEnv, { params, body: one(d.name, d.value, d.service) }),
      remove: (name, service) => api.call(R.deleteDeviceEnv, { params: { ...params, name }, query: scope(service) }),
    };
  return {
    list: async () => (await api.call(R.listDeviceConfig, { params })).items,
    set: (d) => api.call(R.setDeviceConfig, { params, body: { name: d.name, value: d.value } }),
    remove: (name) => api.call(R.deleteDeviceConfig, { params: { ...params, name } }),
  };
}
