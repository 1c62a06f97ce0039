import type { Db } from './db/database.js';
import type { Dialect } from './db/dialect.js';
import type { Metrics } from './metrics/metrics.js';
import type { PollLookup } from './device-api/poll-lookup.js';
import type { TargetStates } from './device-api/target-state.js';
import type { DeviceChanges } from './events/device-changes.js';
import type { RolloutEngine } from './rollouts/rollout-engine.js';

/** What every route module needs, passed explicitly instead of module singletons. */
export interface AppContext {
  db: Db;
  dialect: Dialect;
  /** Base URL devices and CLIs reach this server at, without a trailing slash. */
  publicUrl: string;
  /**
   * PEM CA that devices must trust to verify this server's certificate (its own CA, or `--tls-ca`): config.json
   * carries it as `balenaRootCA`. Absent when the server's certificate is publicly trusted or TLS ends in a proxy.
   */
  rootCa?: string;
  /** Base URL the other server nodes reach this one at (remote-access relays), without a trailing slash. */
  nodeUrl: string;
  metrics: Metrics;
  targetStates: TargetStates;
  /** A device's identity, key and revisions by UUID, from the poll cache (device-api/poll-cache.ts). */
  deviceLookup: PollLookup;
  /** News of device changes for the fleets' live feeds: write sites note what they changed (events/). */
  deviceChanges: DeviceChanges;
  /** Queues the deltas a newly deployed release's devices will ask for (deltas/); set once deltas are installed. */
  deltas?: { precompute(fleetId: number, releaseId: number): Promise<void> };
  /** Queues the OS deltas the devices just given an OS release will ask for (deltas/); set with the deltas. */
  osDeltas?: { precompute(releaseId: number, devices: { fleetId: number } | { deviceId: number }): Promise<void> };
  /** Advances staged rollouts from devices' reports and a timer (rollouts/). */
  rollouts: RolloutEngine;
  /** Every route registered, for the tests that must cover each endpoint. */
  routes: { method: string; url: string }[];
}
