import type { Generated } from 'kysely';
import type { Role } from '@flotilla/protocol';

/**
 * Table shapes. Portable across SQLite and PostgreSQL on purpose: timestamps are ISO-8601 text (sortable, no
 * timezone surprises), booleans are 0/1 integers, JSON documents are text.
 */
export interface Database {
  organizations: { id: Generated<number>; name: string; handle: string; created_at: string };
  users: {
    id: Generated<number>;
    username: string;
    email: string | null;
    password_hash: string | null;
    created_at: string;
    /** 1 for server administrators (who may create users), else 0. */
    is_server_admin: Generated<number>;
  };
  memberships: { organization_id: number; user_id: number; role: Role };
  sessions: { id: Generated<number>; user_id: number; token_hash: string; created_at: string; expires_at: string };
  api_keys: {
    id: Generated<number>;
    user_id: number;
    name: string;
    description: string | null;
    key_hash: string;
    created_at: string;
    expires_at: string | null;
    last_used_at: string | null;
  };
  fleets: {
    id: Generated<number>;
    uuid: string;
    organization_id: number;
    name: string;
    slug: string;
    device_type: string;
    pinned_release_id: number | null;
    /** INVARIANT: bumped by every change that can alter the target state of the fleet's devices. */
    revision: number;
    created_at: string;
    /** The fleet's maintenance window (protocol `updateWindowSchema`, JSON); null: none. */
    update_window_json: string | null;
    /** The OS its devices of the release's device type must run: what a device registered later starts with. */
    target_os_release_id: number | null;
  };
  provisioning_keys: {
    id: Generated<number>;
    fleet_id: number;
    name: string | null;
    key_hash: string;
    created_at: string;
    expires_at: string | null;
    revoked_at: string | null;
    /** The user who made the key; it works only while they administer the fleet's organization. Null: made before this was recorded. */
    created_by: number | null;
  };
  devices: {
    id: Generated<number>;
    uuid: string;
    fleet_id: number;
    name: string;
    device_type: string;
    key_hash: string | null;
    pinned_release_id: number | null;
    /** INVARIANT: bumped by every change to this device that can alter its target state. */
    revision: number;
    status: string | null;
    /** 1 while the device's last word on it was `update_failed: true`. */
    update_failed: Generated<number>;
    last_seen_at: string | null;
    os_version: string | null;
    os_variant: string | null;
    agent_version: string | null;
    ip_address: string | null;
    mac_address: string | null;
    api_port: number | null;
    cpu_usage: number | null;
    cpu_temp: number | null;
    memory_usage: number | null;
    memory_total: number | null;
    storage_usage: number | null;
    storage_total: number | null;
    running_release: string | null;
    services_json: string;
    created_at: string;
    /** The device port its public URL reaches; null: the public URL is off. */
    public_url_port: number | null;
    /** The rollback the device last reported (protocol `deviceRollbackSchema`, JSON); null: none, or it ended. */
    rollback_json: string | null;
    os_update_json: string | null;
    /** The host OS release the device must run (os_releases.id); null: none asked. */
    target_os_release_id: number | null;
    /** Commit of the release the device's last reported delta was for; null: none reported yet. */
    update_release: string | null;
    /** For that release's images: bytes downloaded (delta, and pull after a fallback) and what plain pulls need. */
    update_bytes_downloaded: Generated<number>;
    update_pull_bytes: Generated<number>;
    /** The same summed over every reported delta of the device. */
    total_bytes_downloaded: Generated<number>;
    total_pull_bytes: Generated<number>;
    /** The device's own maintenance window (JSON), in place of its fleet's; null: the fleet's applies. */
    update_window_json: string | null;
    /** When the window opens, as the device last reported while an update waits for it; null: it waits for none. */
    update_window_opens_at: string | null;
  };
  releases: {
    id: Generated<number>;
    fleet_id: number;
    commit: string;
    version: string;
    status: 'running' | 'success' | 'failed';
    is_final: number;
    composition_json: string;
    notes: string | null;
    created_at: string;
    /** The user who created the release; null: made before this was recorded, or that user was deleted. */
    created_by: number | null;
  };
  /** Host OS releases of an organization (migration 0016); the image itself is in the registry. */
  os_releases: {
    id: Generated<number>;
    organization_id: number;
    device_type: string;
    version: string;
    /** `sha256:<hex>` of the OCI manifest in `os.<organization id>/<device type>`. */
    manifest_digest: string;
    /** Hex sha256 and bytes of the raw slot image (the manifest's one layer). */
    image_sha256: string;
    image_size: number;
    created_at: string;
    created_by: number | null;
  };
  /**
   * A staged OS update of a fleet (migration 0017): an app rollout's plan and thresholds, for an OS release. Batches
   * are opened by writing the release into their devices' `target_os_release_id`.
   */
  os_rollouts: {
    id: Generated<number>;
    fleet_id: number;
    os_release_id: number;
    status: 'running' | 'paused' | 'completed' | 'aborted' | 'superseded';
    reason: string | null;
    plan_json: string;
    current_batch: number;
    batch_opened_at: string;
    soak_ms: number;
    offline_timeout_ms: number;
    success_threshold: number;
    failure_threshold: number;
    /** INVARIANT: bumped by every write to the row, made under its row lock (as rollouts.version). */
    version: number;
    created_by: number | null;
    created_at: string;
    updated_at: string;
  };
  os_rollout_devices: {
    os_rollout_id: number;
    device_id: number;
    batch: number;
    state: 'pending' | 'succeeded' | 'failed' | 'offline' | 'excused';
    /** Since when the device has reported the OS committed (or running); null: not now. */
    healthy_since: string | null;
    reason: string | null;
    updated_at: string;
  };
  /** What happened to an OS rollout, in order (as rollout_events). */
  os_rollout_events: {
    id: Generated<number>;
    os_rollout_id: number;
    at: string;
    kind: string;
    batch: number | null;
    message: string;
  };
  release_services: { id: Generated<number>; release_id: number; name: string; image: string | null };
  env_vars: {
    id: Generated<number>;
    fleet_id: number;
    device_id: number | null;
    service: string | null;
    name: string;
    value: string;
    created_at: string;
  };
  config_vars: {
    id: Generated<number>;
    fleet_id: number;
    device_id: number | null;
    /** The name without its FLOTILLA_/BALENA_/RESIN_ prefix: all three spellings are one setting. */
    key: string;
    name: string;
    value: string;
    created_at: string;
  };
  device_tags: { id: Generated<number>; device_id: number; key: string; value: string };
  /** Recent device and service log lines, pruned per device by logs/log-store.ts. Times are epoch milliseconds. */
  device_logs: {
    id: Generated<number>;
    device_id: number;
    timestamp: number;
    created_at: number;
    message: string;
    is_system: number;
    is_std_err: number;
    service_name: string | null;
  };
  /** Actions (restart, reboot, …) queued for a device and delivered over its connection; see actions/. */
  device_actions: {
    id: Generated<number>;
    device_id: number;
    action: string;
    service: string | null;
    force: number;
    status: string;
    error_code: string | null;
    error_message: string | null;
    created_at: string;
    expires_at: string;
    delivered_at: string | null;
    completed_at: string | null;
  };
  /** Pending invitations to join an organization; accepting one makes the membership. */
  invitations: {
    id: Generated<number>;
    organization_id: number;
    user_id: number;
    role: Role;
    invited_by: number | null;
    created_at: string;
    expires_at: string;
  };
  /**
   * Staged rollouts (rollouts/): a release given to batches of a fleet's devices in turn. Only a fleet's latest
   * rollout counts, and only while its release is the fleet's target release (rollouts/rollout-overlay.ts).
   */
  rollouts: {
    id: Generated<number>;
    fleet_id: number;
    release_id: number;
    /** What devices of batches not yet opened run (and every device after an abort); null: nothing. */
    previous_release_id: number | null;
    status: 'running' | 'paused' | 'completed' | 'aborted' | 'superseded' | 'cancelled';
    /** Why it paused, was aborted or cancelled; null otherwise. */
    reason: string | null;
    /** The plan as created (protocol rolloutPlanSchema), JSON. */
    plan_json: string;
    /** Index of the last opened batch: devices of batches 0..current_batch get the release. */
    current_batch: number;
    /** When current_batch opened; null until the release became the fleet's target (it was still building). */
    batch_opened_at: string | null;
    soak_ms: number;
    offline_timeout_ms: number;
    /** Percentages of a batch's counted devices. */
    success_threshold: number;
    failure_threshold: number;
    /** INVARIANT: bumped by every write to the row, which is made under its row lock (rollouts/rollout-lock.ts). */
    version: number;
    created_by: number | null;
    created_at: string;
    updated_at: string;
  };
  /** Which batch each device of a rollout is in, and how it fared. */
  rollout_devices: {
    rollout_id: number;
    device_id: number;
    batch: number;
    state: 'pending' | 'succeeded' | 'failed' | 'offline' | 'excused';
    /** Since when the device has been seen running the release healthy; null: not now. */
    healthy_since: string | null;
    reason: string | null;
    updated_at: string;
  };
  /** Named rollout plans of a fleet (`flotilla deploy --rollout-policy <name>`). */
  rollout_policies: {
    id: Generated<number>;
    fleet_id: number;
    name: string;
    /** protocol rolloutPlanSchema's output, JSON. */
    plan_json: string;
    created_at: string;
    updated_at: string;
  };
  /** What happened to a rollout, in order: batches opened, pauses, resumes, the end. */
  rollout_events: {
    id: Generated<number>;
    rollout_id: number;
    at: string;
    kind: string;
    batch: number | null;
    message: string;
  };
  /** The remote-access audit log: one row per shell, tunnel connection or public-URL connection. */
  remote_sessions: {
    /** The stream id (32 hex), also the path segment the device dials. */
    id: string;
    organization_id: number;
    device_id: number;
    device_uuid: string;
    device_name: string | null;
    /** Null for a public URL's visitors. */
    user_id: number | null;
    username: string | null;
    kind: 'shell' | 'tunnel' | 'public-url';
    target: string;
    /** The StreamRequest sent to the device. */
    request_json: string;
    /** Base URL of the server node holding the user's half; the device's half is relayed there. */
    relay_node: string;
    remote_address: string | null;
    started_at: string;
    ended_at: string | null;
    bytes_in: number;
    bytes_out: number;
    end_reason: string | null;
  };
}
