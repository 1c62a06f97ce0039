import { join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  DEFAULT_LISTEN_PORT,
  DEFAULT_POLL_INTERVAL_MS,
  FlotillaError,
  configVarKey,
  generateKey,
  targetDeviceSchema,
  type DeviceReport,
  type TargetDevice,
  type UpdateStatus,
} from '@flotilla/protocol';
import { assertProvisionable, ensureIdentity, readConfig, type ConfigFile } from './config/config-file.js';
import { buildTargetModel, type ModelContext } from './compose/target-model.js';
import { HttpControlPlane, type ControlPlane } from './control-plane/control-plane.js';
import { Poller } from './control-plane/poller.js';
import type { ContainerEngine, RegistryAuth } from './engine/container-engine.js';
import { DockerEngine } from './engine/docker-engine.js';
import type { RemoteActions } from './actions/remote-actions.js';
import { AgentActions } from './device-api/agent-actions.js';
import { listenDeviceApi, type DeviceApiListener } from './device-api/listen.js';
import { selectHostConfig, type HostConfig } from './host/host-config.js';
import { selectHostPower, type HostPower } from './host/host-power.js';
import { AgentLogs } from './logs/agent-logs.js';
import { withSystemLogs } from './logs/step-messages.js';
import { SERVICES_DIR, isServiceLockDir, scanLocks, serviceLockDir as lockDirOf } from './locks/update-locks.js';
import { PhaseMachine, type PhaseEvent } from './phases/phase-machine.js';
import { AGENT_VERSION, defaultDeviceType, provision } from './provision/provision.js';
import { createExecutors } from './reconcile/executor.js';
import { runPass, type PassResult } from './reconcile/loop.js';
import type { CurrentState, PlanContext, TargetModel } from './reconcile/state.js';
import { buildAppsReport } from './report/build-report.js';
import { CpuSampler, collectMetrics } from './report/metrics.js';
import { Reporter } from './report/reporter.js';
import { tightenPrivateTree } from './store/private-files.js';
import { openStore, type Phase } from './store/store.js';
import { Wakeable, backoffMs, pause } from './util/wakeable.js';

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
  /** Local device API port (default config.json listenPort, else 48484); 0 disables the API (tests use freePort()). */
  apiPort?: number;
  /** Address the local device API binds (default 0.0.0.0, as containers and the LAN reach it; tests 127.0.0.1). */
  apiAddress?: string;
  engine?: ContainerEngine;
  controlPlane?: ControlPlane;
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

function overrideLockConfigured(device: TargetDevice | undefined): boolean {
  return Object.entries(device?.config ?? {}).some(
    ([k, v]) => configVarKey(k) === 'SUPERVISOR_OVERRIDE_LOCK' && v === '1',
  );
}

export async function startAgent(input: AgentOptions): Promise<AgentHandle> {
  // Host paths are bind-mounted by the engine, which needs them absolute.
  const options: AgentOptions = { ...input, dataDir: resolve(input.dataDir), configPath: resolve(input.configPath) };
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info', base: { name: 'flotilla-agent' } });
  const namespace = options.namespace ?? '';
  const dockerSocket = options.dockerSocket ?? '/var/run/docker.sock';
  const read = await readConfig(options.configPath);
  assertProvisionable(read);
  let file: ConfigFile = await ensureIdentity(read);
  const uuid = file.config.uuid as string;
  const deviceApiKey = file.config.deviceApiKey as string;
  // Before anything is opened: what an older agent left readable to others is not, from here on.
  const tightened = tightenPrivateTree(options.dataDir, isServiceLockDir);
  if (tightened > 0) log.warn({ entries: tightened }, 'data folder entries were readable by others; made private');
  const store = openStore(options.dataDir);
  const phases = new PhaseMachine(store);
  const started = phases.start();
  // Nothing to replay: the engine is re-read and the persisted target re-applied, which finishes the interrupted work.
  if (started.resumed)
    log.info({ interruptedApplies: started.interruptedApplies }, 'resuming after an interrupted apply');
  const phaseEvent = (event: PhaseEvent): void => {
    const t = phases.send(event);
    if (!t.ok) log.warn({ phase: t.from, event }, 'phase event refused; phase kept');
  };
  const engine = options.engine ?? new DockerEngine(dockerSocket);
  const hostConfig = selectHostConfig(options.hostConfig, log);
  const hostPower = options.hostPower ?? selectHostPower(options.hostConfig, log);
  const apiEndpoint = file.config.apiEndpoint;
  const managed = apiEndpoint !== undefined;
  const controlPlane = options.controlPlane ?? (apiEndpoint ? new HttpControlPlane(apiEndpoint) : undefined);
  if (options.localTarget)
    store.setTarget({ device: targetDeviceSchema.parse(options.localTarget), etag: null, source: 'local' });
  if (file.config.hostname) await hostConfig.setHostname(file.config.hostname);

  const abort = new AbortController();
  const progress = new Map<string, number>();
  const servicesDir = join(options.dataDir, SERVICES_DIR);
  const serviceLockDir = (appId: number, serviceName: string): string =>
    lockDirOf(servicesDir, namespace, appId, serviceName);
  const supervisorApiKey = store.getSecret('supervisorApiKey', generateKey);
  const apiPort = options.apiPort ?? file.config.listenPort ?? DEFAULT_LISTEN_PORT;
  const logs = await AgentLogs.create({
    dataDir: options.dataDir,
    dockerSocket,
    log,
    persistent: file.config.persistentLogging === true,
    managed,
  });
  const registryHosts = new Set<string>(
    [file.config.registryEndpoint, apiEndpoint ? new URL(apiEndpoint).host : undefined].filter((h): h is string => !!h),
  );
  const registryAuth = (ref: string): RegistryAuth | undefined => {
    const host = ref.split('/')[0] ?? '';
    return registryHosts.has(host) ? { username: `d_${uuid}`, password: deviceApiKey, serveraddress: host } : undefined;
  };
  const modelContext: ModelContext = {
    namespace,
    deviceUuid: uuid,
    deviceType: file.config.deviceType ?? defaultDeviceType(),
    apiEndpoint,
    deviceApiKey,
    dockerSocket,
    // The configured port is the one the API binds (it is never 0 here, which disables it): what apps are given.
    supervisorApi: apiPort === 0 ? null : { port: apiPort, key: supervisorApiKey },
    serviceLockDir,
  };

  // The target model is rebuilt only when the persisted target changes (cheap no-op passes).
  let cachedTarget: { json: string; model: TargetModel } | undefined;
  const targetModel = (): TargetModel | null => {
    const record = store.getTarget();
    if (!record) return null;
    const json = JSON.stringify(record.device);
    if (cachedTarget?.json !== json) cachedTarget = { json, model: buildTargetModel(record.device, modelContext) };
    return cachedTarget.model;
  };

  // A forced update (lock override) lasts until a pass converges on a target fetched after the request, so a
  // pass racing the fetch cannot consume it.
  let force: { requestedAt: number; polled: boolean } | undefined;
  const planContext = async (): Promise<PlanContext> => {
    const { lockedApps, handoverComplete } = await scanLocks(servicesDir, namespace);
    return {
      now: Date.now(),
      lockedApps,
      overrideLock: force !== undefined || overrideLockConfigured(store.getTarget()?.device),
      handoverComplete,
      heldStopped: actions.heldStopped(targetModel()),
    };
  };

  // Set once the local device API listens, before the loop or the control plane start: every place that shows its
  // port (the state report, the agent state) shows the port it actually listens on, and none when it does not.
  let api: DeviceApiListener | undefined;

  // Releases of the last target state that failed validation (reported 'rejected'; the previous target is kept).
  let rejected: Record<string, string[]> = {};
  let lastCurrent: CurrentState | undefined;
  let lastStatuses = new Map<number, UpdateStatus>();
  let lastPass: PassResult | undefined;
  let passes = 0;
  const cpu = new CpuSampler();
  const reporter =
    managed && controlPlane
      ? new Reporter({
          controlPlane,
          store,
          log,
          uuid,
          deviceApiKey,
          ...(options.reportIntervalMs !== undefined ? { minIntervalMs: options.reportIntervalMs } : {}),
          build: async (): Promise<DeviceReport | undefined> => {
            const target = targetModel();
            if (!lastCurrent || !target) return undefined;
            const failed = lastPass?.outcome.kind === 'error' && lastPass.outcome.terminal;
            const apps = buildAppsReport({ current: lastCurrent, target, statuses: lastStatuses, progress, failed });
            for (const [appUuid, commits] of Object.entries(rejected)) {
              const app = (apps[appUuid] ??= { release_uuid: null, releases: {} });
              for (const commit of commits)
                app.releases[commit] = {
                  ...app.releases[commit],
                  update_status: 'rejected',
                  services: app.releases[commit]?.services ?? {},
                };
            }
            const updating = [...lastStatuses.values()].some((s) => s !== 'done');
            return {
              status: failed ? 'Update failed' : updating ? 'Updating' : 'Idle',
              api_port: api?.port ?? null,
              // What lets the control plane call this device's API (balena reports the same key).
              api_secret: supervisorApiKey,
              os_version: `${process.platform} ${process.version}`,
              os_variant: file.config.developmentMode ? 'dev' : 'prod',
              supervisor_version: AGENT_VERSION,
              update_pending: updating,
              update_failed: failed,
              ...(await collectMetrics(cpu, options.dataDir)),
              apps,
            };
          },
        })
      : undefined;

  const executors = withSystemLogs(
    createExecutors({
      engine,
      store,
      log,
      registryAuth,
      progress,
      serviceLockDir,
      onProgress: () => reporter?.trigger(),
    }),
    (message) => logs.system(message),
  );
  const loopDeps = {
    engine,
    executors,
    namespace,
    log,
    knownImages: () => store.knownImages(),
    target: targetModel,
    context: planContext,
    onPlanned: (statuses: Map<number, UpdateStatus>, current: CurrentState) => {
      // Persisted only when there is work, so converged passes cost no disk write.
      if ([...statuses.values()].some((s) => s !== 'done')) phaseEvent('work-planned');
      lastStatuses = statuses;
      lastCurrent = current;
      reporter?.trigger();
    },
  };

  // ------------------------------------------------------------------------------------------- reconcile runner
  // Single flight: one pass at a time; triggers during a pass cause exactly one more pass after it.
  const reconcileWake = new Wakeable();
  // INVARIANT: one thing at a time touches the engine: a reconcile pass or a device action (restart, purge, …).
  let inFlight: Promise<unknown> | undefined;
  const exclusive = async <T>(fn: () => Promise<T>): Promise<T> => {
    while (inFlight) await inFlight.catch(() => undefined);
    const run = fn();
    inFlight = run;
    try {
      return await run;
    } finally {
      if (inFlight === run) inFlight = undefined;
    }
  };
  let errorCount = 0;
  let passStartedAt: number | undefined;
  let lastPassEndedAt = Date.now();
  // Held-back first pass of a crash loop; deliberate, so the health check does not count it as a wedged loop.
  const backoffUntil = Date.now() + started.delayMs;
  let lockDeferred = false;
  const followLogs = (): void => {
    const target = targetModel();
    const serviceIds = new Map(
      (target?.apps ?? []).flatMap((a) => a.services.map((s) => [`${a.appId}/${s.serviceName}`, s.serviceId] as const)),
    );
    // Containers that ever ran stay followed while they exist, so a stop/start keeps its log position.
    logs.sync(
      (lastCurrent?.containers ?? [])
        .filter((c) => c.state !== 'created')
        .map((c) => {
          const serviceId = serviceIds.get(`${c.appId}/${c.serviceName}`);
          return { containerId: c.id, serviceName: c.serviceName, ...(serviceId !== undefined ? { serviceId } : {}) };
        }),
    );
  };
  const pass = (): Promise<PassResult> =>
    exclusive(async () => {
      passStartedAt = Date.now();
      const forced = force?.polled ? force : undefined;
      const result = await runPass(loopDeps, abort.signal);
      if (result.outcome.kind === 'done' && forced && force === forced) force = undefined;
      passes += 1;
      lastPass = result;
      if (result.outcome.kind !== 'cancelled') phaseEvent('pass-finished');
      if (result.outcome.kind === 'error')
        log.error({ err: result.outcome.error.message, terminal: result.outcome.terminal }, 'reconcile pass failed');
      else if (result.stepsExecuted > 0 || result.outcome.kind === 'retry-after')
        log.info(
          { outcome: result.outcome, iterations: result.iterations, ms: Math.round(result.durationMs) },
          'reconcile pass',
        );
      // Said once when an update starts waiting for a lock, not on every retry.
      const locked = result.outcome.kind === 'retry-after' && result.outcome.reason.includes('update lock held');
      if (locked && !lockDeferred) logs.system('Update lock held, update deferred');
      lockDeferred = locked;
      if (result.outcome.kind === 'error') logs.system(`Update failed: ${result.outcome.error.message}`);
      followLogs();
      passStartedAt = undefined;
      lastPassEndedAt = Date.now();
      reporter?.trigger();
      return result;
    });

  // ------------------------------------------------------------------------------------------- device actions
  let poller: Poller | undefined;
  const triggerUpdate = (forced: boolean): void => {
    if (forced) force = { requestedAt: Date.now(), polled: poller === undefined };
    if (poller) poller.trigger();
    else reconcileWake.wake();
  };
  const setLocalTarget = (device: TargetDevice): void => {
    store.setTarget({ device: targetDeviceSchema.parse(device), etag: null, source: 'local' });
    reconcileWake.wake();
  };
  const pollMs = options.pollIntervalMs ?? file.config.appUpdatePollInterval ?? DEFAULT_POLL_INTERVAL_MS;
  const actions = new AgentActions({
    version: AGENT_VERSION,
    uuid,
    apiPort,
    namespace,
    servicesDir,
    engine,
    store,
    log,
    hostConfig,
    hostPower,
    developmentMode: () => file.config.developmentMode === true,
    view: () => ({
      current: lastCurrent,
      target: targetModel(),
      statuses: lastStatuses,
      progress,
      failed: lastPass?.outcome.kind === 'error' && lastPass.outcome.terminal,
    }),
    lockOverridden: () => overrideLockConfigured(store.getTarget()?.device),
    exclusive,
    wake: () => reconcileWake.wake(),
    healthy: () => {
      const now = Date.now();
      try {
        store.getTarget();
      } catch {
        return false;
      }
      // A pass stuck for 30 min, or no pass for well beyond the re-check interval, means the loop is wedged.
      if (passStartedAt !== undefined) return now - passStartedAt < 30 * 60_000;
      return now - Math.max(lastPassEndedAt, backoffUntil) < 2 * pollMs + 60_000;
    },
    applying: () => [...lastStatuses.values()].some((s) => s !== 'done'),
    triggerUpdate,
    localTarget: () => {
      const record = store.getTarget();
      return record?.source === 'local' ? record.device : undefined;
    },
    setLocalTarget,
    system: (message) => logs.system(message),
    subscribeLogs: (listener) => logs.subscribe(listener),
  });

  // ------------------------------------------------------------------------------------------- local device API
  if (apiPort !== 0) {
    try {
      api = await listenDeviceApi({
        actions,
        apiKey: supervisorApiKey,
        port: apiPort,
        host: options.apiAddress ?? '0.0.0.0',
      });
      log.info({ port: api.port }, 'local device API listening');
    } catch (error) {
      // The agent still keeps the apps running without its API; the failure is loud in the log.
      log.error({ err: (error as Error).message, port: apiPort }, 'local device API could not listen');
    }
  }

  const runner = (async () => {
    if (started.delayMs > 0) {
      // Said once per start: an update that kills the agent every time must not thrash the engine and disk forever.
      log.error(
        { interruptedApplies: started.interruptedApplies, delayMs: started.delayMs },
        'crash loop during an update; holding the next attempt back',
      );
      logs.system(
        `Update interrupted ${started.interruptedApplies} times in a row; waiting ${Math.round(started.delayMs / 1000)} s before trying again`,
      );
      // A plain pause, not reconcileWake: polls wake the reconcile loop, and must not cut this wait short.
      await pause(started.delayMs, abort.signal);
    }
    let targetJson = '';
    while (!abort.signal.aborted) {
      const current = JSON.stringify(store.getTarget()?.device ?? null);
      const changed = current !== targetJson;
      targetJson = current;
      if (changed) errorCount = 0;
      const result = await pass();
      let delay: number;
      switch (result.outcome.kind) {
        case 'done':
        case 'cancelled':
          errorCount = 0;
          delay = Number.POSITIVE_INFINITY;
          break;
        case 'retry-after':
          delay = result.outcome.ms;
          break;
        case 'error':
          errorCount += 1;
          // Terminal: wait for a new target or an explicit trigger; transient: back off with a cap.
          delay = result.outcome.terminal ? Number.POSITIVE_INFINITY : backoffMs(errorCount, 300_000, 1_000);
          break;
      }
      // Even when converged, re-check now and then: level-based repair of drift the engine's policy misses.
      await reconcileWake.sleep(Math.min(delay, options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS), abort.signal);
    }
  })();

  // ------------------------------------------------------------------------------------------- control plane
  let remote: RemoteActions | undefined;
  let provisioned: Promise<boolean> | undefined;
  if (managed && controlPlane) {
    const cp = controlPlane;
    // Provisioning retries in the background; meanwhile the persisted target keeps being applied.
    provisioned = (async () => {
      for (let failures = 0; !abort.signal.aborted; ) {
        try {
          if (file.config.deviceId === undefined) phaseEvent('provision-needed');
          file = await provision(file, cp, log);
          phaseEvent('provisioned');
          return true;
        } catch (error) {
          failures += 1;
          log.warn({ err: (error as Error).message, failures }, 'provisioning failed; will retry');
          await pause(backoffMs(failures, 300_000, 2_000), abort.signal);
        }
      }
      return false;
    })();
    poller = new Poller({
      controlPlane: cp,
      store,
      log,
      uuid,
      deviceApiKey,
      baseIntervalMs: file.config.appUpdatePollInterval ?? DEFAULT_POLL_INTERVAL_MS,
      ...(options.pollIntervalMs !== undefined ? { fixedIntervalMs: options.pollIntervalMs } : {}),
      onPolled: ({ ok, startedAt }) => {
        // A successful poll (new or unchanged target) means the control plane serves a valid target again.
        if (ok && Object.keys(rejected).length > 0) {
          rejected = {};
          reporter?.trigger();
        }
        if (force && startedAt >= force.requestedAt) force.polled = true;
        reconcileWake.wake();
      },
      onError: (error) => {
        if (error instanceof FlotillaError && error.code === 'VALIDATION_FAILED') {
          const details = error.details as { rejected?: Record<string, string[]> } | undefined;
          rejected = details?.rejected ?? {};
          reporter?.trigger();
        }
      },
    });
    const p = poller;
    void provisioned.then(async (ok) => {
      if (!ok) return;
      p.start(abort.signal);
      reporter?.start(abort.signal);
      if (!apiEndpoint) return;
      const credentials = { apiEndpoint, uuid, deviceApiKey };
      await logs.startShipping(credentials);
      // Loaded only on managed devices (the WebSocket client is not needed otherwise).
      const { RemoteActions: Remote } = await import('./actions/remote-actions.js');
      if (abort.signal.aborted) return;
      remote = new Remote({
        ...credentials,
        actions,
        heldEtag: () => {
          const record = store.getTarget();
          return record?.source === 'cloud' ? record.etag : null;
        },
        defaultAppId: () => targetModel()?.apps[0]?.appId,
        onEvent: (event) => log.info({ event: event.kind, detail: event.detail }, 'remote actions'),
      });
      remote.start();
    });
  }

  return {
    async stop() {
      // Outside first (no new requests or actions), then the loop, then the log pipeline, the store last.
      abort.abort();
      await api?.close().catch(() => undefined);
      await runner;
      await inFlight?.catch(() => undefined);
      await provisioned;
      remote?.stop();
      await poller?.stopped();
      await reporter?.stopped();
      await logs.stop();
      store.close();
    },
    triggerUpdate(opts = {}) {
      triggerUpdate(opts.force === true);
    },
    setLocalTarget,
    reconcileNow: () => pass(),
    state(): AgentState {
      const record = store.getTarget();
      return {
        phase: phases.phase(),
        uuid,
        managed,
        hostname: hostConfig.hostname(),
        hostConfigMode: hostConfig.mode,
        apiPort: api?.port,
        logsShipped: logs.shipped,
        remoteActionsConnected: remote?.connected ?? false,
        lastPass,
        passes,
        reportsSent: reporter?.reportsSent ?? 0,
        targetCommits: Object.fromEntries(
          Object.entries(record?.device.apps ?? {}).map(([k, a]) => [k, Object.keys(a.releases)[0] ?? null]),
        ),
      };
    },
  };
}
