import type { Logger } from 'pino';
import { DEFAULT_POLL_INTERVAL_MS, type DeviceReport } from '@flotilla/protocol';
import type { ConfigFile } from '../config/config-file.js';
import type { DeviceActions } from '../device-api/device-actions.js';
import type { AgentLogs } from '../logs/agent-logs.js';
import type { PhaseEvent } from '../phases/phase-machine.js';
import { provision } from '../provision/provision.js';
import type { DeviceView } from '../reconcile/observed.js';
import { buildDeviceReport, reportable, type DeviceAbout } from '../report/device-report.js';
import type { RemoteAccess, RemoteAccessOptions } from '../remote/remote-access.js';
import type { Metrics } from '../report/metrics.js';
import { Reporter } from '../report/reporter.js';
import type { Store } from '../store/store.js';
import type { TargetSource } from '../target/target-source.js';
import { backoffMs, pause } from '../util/wakeable.js';
import type { ControlPlane } from './control-plane.js';
import type { ControlPlaneConnection } from './connection.js';
import { Poller } from './poller.js';

export interface ControlPlaneSessionDeps {
  controlPlane: ControlPlane;
  /** config.json as read at start; provisioning writes the device id back. */
  file: ConfigFile;
  apiEndpoint: string;
  uuid: string;
  deviceApiKey: string;
  /** CAs to verify the control plane with (util/trust.ts); absent: Node's roots. */
  ca?: string[] | undefined;
  store: Store;
  log: Logger;
  targets: Pick<TargetSource, 'polled' | 'pollFailed' | 'model' | 'rejected'>;
  logs: Pick<AgentLogs, 'startShipping'>;
  phase: (event: PhaseEvent) => void;
  /** A poll ended: the level-based loop re-checks the world each time. */
  wakeReconcile: () => void;
  /** The world to report, as the reconciler last saw it. */
  view: () => DeviceView;
  about: () => DeviceAbout;
  metrics: () => Promise<Metrics>;
  /** Shells and tunnels the control plane asks for (remote/): the engine and the agent's settings. */
  remote: Pick<RemoteAccessOptions, 'engine' | 'namespace' | 'hostShell' | 'maxStreams'>;
  /** Fixed poll interval without jitter (tests, bench). */
  pollIntervalMs?: number;
  /** Minimum delay between reports (tests shorten it). */
  reportIntervalMs?: number;
}

/**
 * A managed device's life with its control plane: provisioning (retried in the background while the persisted
 * target keeps being applied), then the target poller, the state reporter, log shipping and the connection that
 * carries the control plane's actions.
 */
export class ControlPlaneSession {
  private file: ConfigFile;
  private readonly poller: Poller;
  private readonly reporter: Reporter;
  private connection: ControlPlaneConnection | undefined;
  private remote: RemoteAccess | undefined;
  private provisioned: Promise<boolean> | undefined;

  constructor(private readonly deps: ControlPlaneSessionDeps) {
    this.file = deps.file;
    this.reporter = new Reporter({
      controlPlane: deps.controlPlane,
      store: deps.store,
      log: deps.log,
      uuid: deps.uuid,
      deviceApiKey: deps.deviceApiKey,
      ...(deps.reportIntervalMs !== undefined ? { minIntervalMs: deps.reportIntervalMs } : {}),
      build: () => this.report(),
    });
    this.poller = new Poller({
      controlPlane: deps.controlPlane,
      store: deps.store,
      log: deps.log,
      uuid: deps.uuid,
      deviceApiKey: deps.deviceApiKey,
      baseIntervalMs: deps.file.config.appUpdatePollInterval ?? DEFAULT_POLL_INTERVAL_MS,
      ...(deps.pollIntervalMs !== undefined ? { fixedIntervalMs: deps.pollIntervalMs } : {}),
      onPolled: ({ ok, startedAt }) => {
        if (deps.targets.polled({ ok, startedAt })) this.reportSoon();
        deps.wakeReconcile();
      },
      onError: (error) => {
        if (deps.targets.pollFailed(error)) this.reportSoon();
      },
    });
  }

  /** Provisions (retrying), then polls, reports, ships logs and connects; `actions` run what the connection asks. */
  start(actions: DeviceActions, signal: AbortSignal): void {
    const { deps } = this;
    this.provisioned = this.provision(signal);
    void this.provisioned.then(async (ok) => {
      if (!ok) return;
      this.poller.start(signal);
      this.reporter.start(signal);
      const credentials = {
        apiEndpoint: deps.apiEndpoint,
        uuid: deps.uuid,
        deviceApiKey: deps.deviceApiKey,
        ca: deps.ca,
      };
      await deps.logs.startShipping(credentials);
      // Loaded only on managed devices (the WebSocket client is not needed otherwise).
      const [{ ControlPlaneConnection: Connection }, { RemoteAccess: Remote }] = await Promise.all([
        import('./connection.js'),
        import('../remote/remote-access.js'),
      ]);
      if (signal.aborted) return;
      const remote = new Remote({
        ...credentials,
        ...deps.remote,
        appId: () => deps.targets.model()?.apps[0]?.appId,
        log: deps.log,
      });
      this.remote = remote;
      this.connection = new Connection({
        ...credentials,
        actions,
        // The server compares it with the current target as the connection opens, and announces a difference at once.
        heldEtag: () => {
          const record = deps.store.getTarget();
          return record?.source === 'cloud' ? record.etag : null;
        },
        defaultAppId: () => deps.targets.model()?.apps[0]?.appId,
        onEvent: (event) => deps.log.info({ event: event.kind, detail: event.detail }, 'remote actions'),
        onStreamOpen: (message) => remote.open(message),
      });
      this.connection.start();
    });
  }

  /** Fetch the target now (and reconcile after it). */
  pollNow(): void {
    this.poller.trigger();
  }

  /** Something the report shows changed (the reporter rate-limits what it sends). */
  reportSoon(): void {
    this.reporter.trigger();
  }

  get connected(): boolean {
    return this.connection?.connected ?? false;
  }

  /** Remote streams (shells, tunnelled connections) dialling or open. */
  get remoteStreams(): number {
    return this.remote?.active ?? 0;
  }

  get reportsSent(): number {
    return this.reporter.reportsSent;
  }

  /** Call after the signal given to start() aborted. */
  async stop(): Promise<void> {
    await this.provisioned;
    this.connection?.stop();
    await this.remote?.stop();
    await this.poller.stopped();
    await this.reporter.stopped();
  }

  private async provision(signal: AbortSignal): Promise<boolean> {
    const { deps } = this;
    for (let failures = 0; !signal.aborted; ) {
      try {
        if (this.file.config.deviceId === undefined) deps.phase('provision-needed');
        this.file = await provision(this.file, deps.controlPlane, deps.log, deps.about().os_version);
        deps.phase('provisioned');
        return true;
      } catch (error) {
        failures += 1;
        deps.log.warn({ err: (error as Error).message, failures }, 'provisioning failed; will retry');
        await pause(backoffMs(failures, 300_000, 2_000), signal);
      }
    }
    return false;
  }

  private async report(): Promise<DeviceReport | undefined> {
    const view = this.deps.view();
    if (!reportable(view)) return undefined;
    return buildDeviceReport(view, this.deps.targets.rejected(), this.deps.about(), await this.deps.metrics());
  }
}
