import type { TargetDevice } from '@flotilla/protocol';
import type { Logger } from 'pino';
import type { ControlPlane } from './control-plane/control-plane.js';
import type { ContainerEngine } from './engine/container-engine.js';
import type { HostConfig } from './host/host-config.js';
import type { HostPower } from './host/host-power.js';
import type { PassResult } from './reconcile/loop.js';
import type { Phase } from './store/store.js';

// What `startAgent` (agent.ts) takes and gives: its options, its handle, the state the handle shows.

export interface AgentOptions {
  configPath: string;
  dataDir: string;
  dockerSocket?: string;
  logLevel?: string;
  /** Fixed poll interval without jitter (tests, bench); otherwise target config / config.json / 900 s. */
  pollIntervalMs?: number;
  /** Prefix for every engine object name and a label value, so agents sharing an engine stay apart (tests). */
  namespace?: string;
  /** 'real' writes /etc/hostname; anything else (default) is a dry run. Env FLOTILLA_AGENT_HOST_CONFIG too. */
  hostConfig?: 'real' | 'dry-run';
  /** Unmanaged devices: a target state (one device's part) to apply, as from `POST /v2/local/target-state`. */
  localTarget?: TargetDevice;
  /** Minimum delay between reports (default 10 s; tests shorten it). */
  reportIntervalMs?: number;
  /** How long a delta may stay pending on the server before the image is pulled instead (default 2 min). */
  deltaPendingLimitMs?: number;
  /** Bound of `<data>/layer-cache/` (compressed layers kept for the next delta), default 512 MiB; 0 keeps none. */
  layerCacheBytes?: number;
  /** Where a preloaded release is looked for at start (`flotilla os preload`), default `<dataDir>/preload`. */
  preloadDir?: string;
  /** Local device API port (default config.json listenPort, else 48484); 0 disables the API (tests use freePort()). */
  apiPort?: number;
  /** Address the local device API binds (default 0.0.0.0, as containers and the LAN reach it; tests 127.0.0.1). */
  apiAddress?: string;
  engine?: ContainerEngine;
  controlPlane?: ControlPlane;
  /**
   * Remote host shells run this command, split at spaces (default: $SHELL, else /bin/sh): e.g.
   * `nsenter -t 1 -m -u -i -n -p -- sh` for an agent in a container with the host's pid namespace.
   */
  hostShell?: string;
  /** Remote streams (shells, tunnelled connections) open at once; more are refused (default 256). */
  maxRemoteStreams?: number;
  /** The host's os-release(5) (default /etc/os-release): the OS name the device reports, the version it runs. */
  osReleaseFile?: string;
  /** A/B hosts: the file the booted slot is read from (default /proc/cmdline); tests name their own. */
  hostOsCmdline?: string;
  /** Reboot/shutdown/identify; default follows `hostConfig` (dry-run unless 'real'). */
  hostPower?: HostPower;
  logger?: Logger;
}

export interface AgentState {
  phase: Phase;
  uuid: string;
  managed: boolean;
  hostname: string;
  hostConfigMode: HostConfig['mode'];
  /** The port the local device API listens on, or undefined when disabled or not (yet) listening. */
  apiPort: number | undefined;
  logsShipped: number;
  remoteActionsConnected: boolean;
  /** Remote shells and tunnelled connections dialling or open. */
  remoteStreams: number;
  lastPass: PassResult | undefined;
  passes: number;
  reportsSent: number;
  targetCommits: Record<string, string | null>;
}

export interface AgentHandle {
  stop(): Promise<void>;
  /** Poll the control plane and reconcile now; `force` ignores update locks for this pass. */
  triggerUpdate(options?: { force?: boolean }): void;
  state(): AgentState;
  /** Replace the local target (unmanaged devices) and reconcile. */
  setLocalTarget(device: TargetDevice): void;
  /** Run one reconciliation pass now and return its result (waits for a pass in flight first). */
  reconcileNow(): Promise<PassResult>;
}
