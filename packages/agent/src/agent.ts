import { join, resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  DEFAULT_LISTEN_PORT,
  DEFAULT_POLL_INTERVAL_MS,
  FlotillaError,
  generateKey,
  type DeviceOsUpdate,
  type TargetDevice,
} from '@flotilla/protocol';
import { assertProvisionable, ensureIdentity, readConfig } from './config/config-file.js';
import type { ModelContext } from './compose/target-model.js';
import { HttpControlPlane, type ControlPlane } from './control-plane/control-plane.js';
import { controlPlaneCas } from './util/trust.js';
import { ControlPlaneSession } from './control-plane/session.js';
import type { ContainerEngine } from './engine/container-engine.js';
import { DockerEngine } from './engine/docker-engine.js';
import { registryAuthFor } from './engine/registry-auth.js';
import { AgentActions } from './device-api/agent-actions.js';
import { listenDeviceApi, type DeviceApiListener } from './device-api/listen.js';
import { PendingRequests } from './device-api/pending-requests.js';
import { StopHolds } from './device-api/stop-holds.js';
import { selectHostConfig, type HostConfig } from './host/host-config.js';
import { selectHostPower, type HostPower } from './host/host-power.js';
import { AgentLogs } from './logs/agent-logs.js';
import { withSystemLogs } from './logs/step-messages.js';
import { SERVICES_DIR, isServiceLockDir, scanLocks, serviceLockDir as lockDirOf } from './locks/update-locks.js';
import { PhaseMachine, type PhaseEvent } from './phases/phase-machine.js';
import { AGENT_VERSION, defaultDeviceType } from './provision/provision.js';
import { ReconcileController } from './reconcile/controller.js';
import { createExecutors } from './reconcile/executor.js';
import { DeltaFetcher, deltasEnabled } from './deltas/delta-fetcher.js';
import { LayerCache } from './deltas/layer-cache.js';
import { ResumablePull } from './pull/resumable-pull.js';
import type { PassResult } from './reconcile/loop.js';
import { Observed } from './reconcile/observed.js';
import { Reconciler } from './reconcile/reconciler.js';
import { ReleaseWatch } from './rollback/release-watch.js';
import { CpuSampler, collectMetrics } from './report/metrics.js';
import { controlPlaneConnected, engineAnswers } from './hostos/health.js';
import { startHostOs } from './hostos/host-os.js';
import { readOsRelease } from './host/os-release.js';
import { loadPreload } from './preload/preload.js';
import { controlPlaneImage } from './hostos/image-download.js';
import { OsFollower } from './hostos/os-follower.js';
import { tightenPrivateTree } from './store/private-files.js';
import { openStore, type Phase, type Store } from './store/store.js';
import { TargetSource } from './target/target-source.js';
import { Wakeable } from './util/wakeable.js';
import { UpdateGate } from './window/update-gate.js';

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

/**
 * The composition root: reads config.json, opens the store and wires the agent's parts, each behind a narrow
 * interface: the target source (target/), the reconciler and its controller (reconcile/), the device actions and
 * the local API (device-api/), and on managed devices the control-plane session (control-plane/).
 */
export async function startAgent(input: AgentOptions): Promise<AgentHandle> {
  // Host paths are bind-mounted by the engine, which needs them absolute.
  const options: AgentOptions = { ...input, dataDir: resolve(input.dataDir), configPath: resolve(input.configPath) };
  const log = options.logger ?? pino({ level: options.logLevel ?? 'info', base: { name: 'flotilla-agent' } });
  const namespace = options.namespace ?? '';
  const dockerSocket = options.dockerSocket ?? '/var/run/docker.sock';
  // Checked here, not when the first remote shell is asked for, which is long after the operator looked.
  if (options.hostShell !== undefined && options.hostShell.trim() === '')
    throw new FlotillaError('VALIDATION_FAILED', 'the host shell command is empty');
  if (
    options.maxRemoteStreams !== undefined &&
    !(Number.isInteger(options.maxRemoteStreams) && options.maxRemoteStreams > 0)
  )
    throw new FlotillaError('VALIDATION_FAILED', 'maxRemoteStreams must be a positive integer');
  const read = await readConfig(options.configPath);
  assertProvisionable(read);
  const file = await ensureIdentity(read);
  const osRelease = await readOsRelease(options.osReleaseFile);
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
  const phase = (event: PhaseEvent): void => {
    const t = phases.send(event);
    if (!t.ok) log.warn({ phase: t.from, event }, 'phase event refused; phase kept');
  };
  const engine = options.engine ?? new DockerEngine(dockerSocket);
  const hostConfig = selectHostConfig(options.hostConfig, log);
  const hostPower = options.hostPower ?? selectHostPower(options.hostConfig, log);
  const apiEndpoint = file.config.apiEndpoint;
  const managed = apiEndpoint !== undefined;
  // config.json's balenaRootCA: a control plane with its own CA is trusted on every connection to it.
  const ca = controlPlaneCas(file.config.balenaRootCA);
  const controlPlane = options.controlPlane ?? (apiEndpoint ? new HttpControlPlane(apiEndpoint, ca) : undefined);
  const servicesDir = join(options.dataDir, SERVICES_DIR);
  const serviceLockDir = (appId: number, serviceName: string): string =>
    lockDirOf(servicesDir, namespace, appId, serviceName);
  const supervisorApiKey = store.getSecret('supervisorApiKey', generateKey);
  const apiPort = options.apiPort ?? file.config.listenPort ?? DEFAULT_LISTEN_PORT;
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
  // Wakes the reconcile controller (made below, once the parts it drives exist).
  const reconcileWake = new Wakeable();
  let session: ControlPlaneSession | undefined;
  let logSystem = (_message: string): void => undefined;
  const watch = new ReleaseWatch({
    store,
    engine,
    device: () => store.getTarget()?.device,
    log,
    system: (message) => logSystem(message),
    changed: () => session?.reportSoon(),
    wake: () => reconcileWake.wake(),
    stoppedOnRequest: (model) => new Set([...(model ? holds.heldStopped(model) : []), ...pending.get().stop]),
  });
  const targets = new TargetSource({ store, context: modelContext, effective: (device) => watch.effective(device) });
  const gate = new UpdateGate({
    store,
    window: () => targets.device()?.update_window,
    targetKey: () => targets.key(),
    forced: () => targets.force.active(),
    rollingBack: () => watch.rollback() !== null,
    log,
  });
  // Before the first pass, so a device flashed with a preloaded release runs it with no network at all.
  await preload(engine, store, options.preloadDir ?? join(options.dataDir, 'preload'), log);
  if (options.localTarget) targets.setLocal(options.localTarget);
  if (file.config.hostname) await hostConfig.setHostname(file.config.hostname);

  const abort = new AbortController();
  const logs = await AgentLogs.create({
    dataDir: options.dataDir,
    dockerSocket,
    log,
    persistent: file.config.persistentLogging === true,
    managed,
  });
  logSystem = (message) => logs.system(message);
  const observed = new Observed();
  // Where the host OS update stands (hostos/, set from its start below); null on a host without A/B updates.
  let osUpdate: DeviceOsUpdate | null = null;
  let osFollower: OsFollower | undefined;
  const view = () => ({ ...observed.view(targets.model()), rollback: watch.rollback(), osUpdate });
  const holds = new StopHolds(store);
  const pending = new PendingRequests();
  const cpu = new CpuSampler();
  // Set once the local device API listens, before the loop or the control plane start: every place that shows its
  // port (the state report, the agent state) shows the port it actually listens on, and none when it does not.
  let api: DeviceApiListener | undefined;
  session =
    managed && controlPlane
      ? new ControlPlaneSession({
          controlPlane,
          file,
          apiEndpoint,
          uuid,
          deviceApiKey,
          ca,
          store,
          log,
          targets,
          logs,
          phase,
          wakeReconcile: () => {
            reconcileWake.wake();
            // A new target may name another host OS (its `os`); the follower decides, and starts it in the background.
            osFollower?.follow(targets.device()?.os);
          },
          view,
          about: () => ({
            api_port: api?.port ?? null,
            api_secret: supervisorApiKey,
            os_version: osRelease.name,
            os_variant: file.config.developmentMode ? 'dev' : 'prod',
            supervisor_version: AGENT_VERSION,
          }),
          metrics: () => collectMetrics(cpu, options.dataDir),
          remote: {
            engine,
            namespace,
            ...(options.hostShell !== undefined ? { hostShell: options.hostShell } : {}),
            ...(options.maxRemoteStreams !== undefined ? { maxStreams: options.maxRemoteStreams } : {}),
          },
          ...(options.pollIntervalMs !== undefined ? { pollIntervalMs: options.pollIntervalMs } : {}),
          ...(options.reportIntervalMs !== undefined ? { reportIntervalMs: options.reportIntervalMs } : {}),
        })
      : undefined;

  const registryAuth = registryAuthFor({
    hosts: [file.config.registryEndpoint, apiEndpoint ? new URL(apiEndpoint).host : undefined],
    uuid,
    deviceApiKey,
  });
  const layerCache = new LayerCache(join(options.dataDir, 'layer-cache'), options.layerCacheBytes);
  const pulls =
    managed && apiEndpoint
      ? new ResumablePull({
          engine,
          log,
          dataDir: options.dataDir,
          namespace,
          registryAuth,
          // The API's own host is reached as the API is (http on a LAN or in tests); any other registry by TLS.
          registryBase: (host) =>
            new URL(`${new URL(apiEndpoint).host === host ? new URL(apiEndpoint).protocol : 'https:'}//${host}`),
          ca,
          cache: layerCache,
        })
      : undefined;
  const executors = withSystemLogs(
    createExecutors({
      engine,
      store,
      log,
      registryAuth,
      progress: observed.progress,
      serviceLockDir,
      deltas:
        managed && apiEndpoint
          ? new DeltaFetcher({
              engine,
              log,
              endpoint: { apiEndpoint, uuid, deviceApiKey, ca },
              dataDir: options.dataDir,
              cache: layerCache,
              namespace,
              enabled: () => deltasEnabled(targets.device()),
              targetImageId: (appId, serviceName, image) =>
                targets
                  .model()
                  ?.apps.find((a) => a.appId === appId)
                  ?.services.find((s) => s.serviceName === serviceName && s.image === image)?.imageId,
              ...(options.deltaPendingLimitMs !== undefined ? { pendingLimitMs: options.deltaPendingLimitMs } : {}),
              ...(pulls ? { layersOf: (ref: string, signal: AbortSignal) => pulls.diffIds(ref, signal) } : {}),
            })
          : undefined,
      pulls,
      onProgress: () => session?.reportSoon(),
    }),
    (message) => logs.system(message),
  );
  const reconciler = new Reconciler({
    engine,
    executors,
    namespace,
    log,
    knownImages: () => store.knownImages(),
    targets,
    scanLocks: () => scanLocks(servicesDir, namespace),
    heldStopped: (target) => holds.heldStopped(target),
    requests: () => pending.get(),
    observed,
    phase,
    logs,
    changed: () => session?.reportSoon(),
    keepImages: () => watch.keepImages(),
    afterPass: (seen) => watch.afterPass(seen),
    gate,
  });
  const pollIntervalMs = options.pollIntervalMs ?? file.config.appUpdatePollInterval ?? DEFAULT_POLL_INTERVAL_MS;
  const controller = new ReconcileController({
    reconciler,
    targetKey: () => targets.key(),
    recheckMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
    pollIntervalMs,
    wakeup: reconcileWake,
    signal: abort.signal,
  });

  const triggerUpdate = (force: boolean): void => {
    // A forced update is the explicit word that lets a refused release be tried again.
    if (force) watch.retry();
    // Without a control plane no fetch is coming: the stored target is the one a forced pass converges on.
    if (force) targets.force.requested(Date.now(), session === undefined);
    if (session) session.pollNow();
    // An update asked for by the user is tried now, even during the back-off after failed passes.
    controller.retry();
  };
  const setLocalTarget = (device: TargetDevice): void => {
    targets.setLocal(device);
    controller.wake();
  };
  const actions = new AgentActions({
    version: AGENT_VERSION,
    uuid,
    apiPort,
    namespace,
    servicesDir,
    engine,
    holds,
    requests: pending,
    pass: () => controller.pass(),
    log,
    hostConfig,
    hostPower,
    developmentMode: () => file.config.developmentMode === true,
    view,
    lockOverridden: () => targets.lockOverrideConfigured(),
    // A user's action: the pass after it runs now, even during an error back-off.
    wake: () => controller.retry(),
    healthy: () => targets.readable() && controller.healthy(),
    triggerUpdate,
    localTarget: () => targets.local(),
    setLocalTarget,
    system: (message) => logs.system(message),
    subscribeLogs: (listener) => logs.subscribe(listener),
  });

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

  if (started.delayMs > 0) {
    // Said once per start: an update that kills the agent every time must not thrash the engine and disk forever.
    log.error(
      { interruptedApplies: started.interruptedApplies, delayMs: started.delayMs },
      'crash loop during an update; holding the next attempt back',
    );
    logs.system(
      `Update interrupted ${started.interruptedApplies} times in a row; waiting ${Math.round(started.delayMs / 1000)} s before trying again`,
    );
  }
  controller.start(started.delayMs);
  session?.start(actions, abort.signal);
  // An A/B host (config.json's hostOS) carries its OS update on across this boot: a trial boot commits once the engine
  // answers and the control plane is connected (a device without one: the engine alone), else goes back.
  const hostOs = await startHostOs({
    hostOS: file.raw.hostOS,
    dataDir: options.dataDir,
    ...(options.hostOsCmdline !== undefined ? { cmdlineFile: options.hostOsCmdline } : {}),
    // The image comes from the control plane with the device key, resumed after a cut link.
    ...(apiEndpoint ? { openImage: controlPlaneImage({ apiEndpoint, deviceApiKey, ca }) } : {}),
    reboot: () => hostPower.reboot(),
    healthChecks: [
      engineAnswers(() => engine.platform()),
      ...(session ? [controlPlaneConnected(() => session?.connected ?? false)] : []),
    ],
    log,
    system: (message) => logs.system(message),
    report: (update) => {
      osUpdate = update;
      session?.reportSoon();
    },
  });
  if (hostOs && apiEndpoint) {
    osFollower = new OsFollower(hostOs, apiEndpoint, log, osRelease.version);
    osFollower.follow(targets.device()?.os);
  }

  return {
    async stop() {
      // Outside first (no new requests or actions), then the loop, then the log pipeline, the store last.
      abort.abort();
      watch.stop();
      await api?.close().catch(() => undefined);
      await controller.stopped();
      await session?.stop();
      await logs.stop();
      store.close();
    },
    triggerUpdate(opts = {}) {
      triggerUpdate(opts.force === true);
    },
    setLocalTarget,
    reconcileNow: () => controller.pass(),
    state(): AgentState {
      return {
        phase: phases.phase(),
        uuid,
        managed,
        hostname: hostConfig.hostname(),
        hostConfigMode: hostConfig.mode,
        apiPort: api?.port,
        logsShipped: logs.shipped,
        remoteActionsConnected: session?.connected ?? false,
        remoteStreams: session?.remoteStreams ?? 0,
        lastPass: controller.lastPass,
        passes: controller.passes,
        reportsSent: session?.reportsSent ?? 0,
        targetCommits: targets.commits(),
      };
    },
  };
}

/**
 * Loads a preload (preload/preload.ts). A bad one is logged and left: the device still provisions and pulls its
 * release from the control plane once online; the next start tries the preload again.
 */
async function preload(engine: ContainerEngine, store: Store, dir: string, log: Logger): Promise<void> {
  try {
    const outcome = await loadPreload({ dir, engine, store, log, signal: new AbortController().signal });
    if (outcome.status === 'loaded') log.info(outcome, 'preloaded release loaded');
  } catch (error) {
    const code = error instanceof FlotillaError ? error.code : undefined;
    log.error({ err: (error as Error).message, code, dir }, 'preloaded release could not be loaded; left as it is');
  }
}
