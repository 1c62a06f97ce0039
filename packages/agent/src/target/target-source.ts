import { FlotillaError, targetDeviceSchema, type TargetDevice } from '@flotilla/protocol';
import { buildTargetModel, type ModelContext } from '../compose/target-model.js';
import type { TargetModel } from '../reconcile/state.js';
import type { Store } from '../store/store.js';
import { ForcedUpdate, overrideLockConfigured } from './lock-override.js';

export interface TargetSourceDeps {
  store: Pick<Store, 'getTarget' | 'setTarget'>;
  /** What the agent adds to every service when the target is turned into a model. */
  context: ModelContext;
  /** The device as applied, from the stored one (self-rollback puts refused releases' committed ones back). */
  effective?: (device: TargetDevice) => TargetDevice;
}

/**
 * The target the device converges on, as the reconciler, the reporter and the device API read it: the persisted
 * target (from the control plane or local), its model (rebuilt only when the stored target changes, so no-op passes
 * stay cheap), whether update locks are overridden, and the releases of the last fetched target that failed
 * validation (reported 'rejected' while the previous target stays applied).
 */
export class TargetSource {
  /** A forced update in progress (lock override until a pass converges on a target fetched after the request). */
  readonly force = new ForcedUpdate();
  private cached: { json: string; model: TargetModel } | undefined;
  private rejectedReleases: Record<string, string[]> = {};

  constructor(private readonly deps: TargetSourceDeps) {}

  device(): TargetDevice | undefined {
    return this.deps.store.getTarget()?.device;
  }

  /** Null when there is no target at all yet (fresh unmanaged device). */
  model(): TargetModel | null {
    const device = this.applied();
    if (!device) return null;
    const json = JSON.stringify(device);
    if (this.cached?.json !== json) this.cached = { json, model: buildTargetModel(device, this.deps.context) };
    return this.cached.model;
  }

  /** The stored target as the device applies it (a refused release replaced by the committed one). */
  private applied(): TargetDevice | undefined {
    const device = this.device();
    return device && this.deps.effective ? this.deps.effective(device) : device;
  }

  /** Changes exactly when the applied target does. */
  key(): string {
    return JSON.stringify(this.applied() ?? null);
  }

  /** The stored target when it came from the local API / options (unmanaged devices), else undefined. */
  local(): TargetDevice | undefined {
    const record = this.deps.store.getTarget();
    return record?.source === 'local' ? record.device : undefined;
  }

  /** Validates and persists a local target; the caller wakes the reconciler. */
  setLocal(device: TargetDevice): void {
    this.deps.store.setTarget({ device: targetDeviceSchema.parse(device), etag: null, source: 'local' });
  }

  /** Per app uuid, the release commit the target names (null: the app is in target without a release). */
  commits(): Record<string, string | null> {
    return Object.fromEntries(
      Object.entries(this.device()?.apps ?? {}).map(([k, a]) => [k, Object.keys(a.releases)[0] ?? null]),
    );
  }

  /** Config var BALENA_SUPERVISOR_OVERRIDE_LOCK=1 in the stored target. */
  lockOverrideConfigured(): boolean {
    return overrideLockConfigured(this.device());
  }

  /** Update locks do not hold updates back: configured so, or an update was forced. */
  overrideLock(): boolean {
    return this.force.active() || this.lockOverrideConfigured();
  }

  /** False when the store does not answer (the health check). */
  readable(): boolean {
    try {
      this.deps.store.getTarget();
      return true;
    } catch {
      return false;
    }
  }

  /** Releases of the last fetched target that failed validation, per app uuid. */
  rejected(): Readonly<Record<string, readonly string[]>> {
    return this.rejectedReleases;
  }

  /** A poll finished; returns true when what the report says changed (rejected releases cleared). */
  polled(poll: { ok: boolean; startedAt: number }): boolean {
    this.force.polled(poll.startedAt, this.key());
    // A successful poll (new or unchanged target) means the control plane serves a valid target again.
    if (!poll.ok || Object.keys(this.rejectedReleases).length === 0) return false;
    this.rejectedReleases = {};
    return true;
  }

  /** A poll failed; returns true when what the report says changed (the fetched target was rejected). */
  pollFailed(error: Error): boolean {
    if (!(error instanceof FlotillaError) || error.code !== 'VALIDATION_FAILED') return false;
    const details = error.details as { rejected?: Record<string, string[]> } | undefined;
    this.rejectedReleases = details?.rejected ?? {};
    return true;
  }
}
