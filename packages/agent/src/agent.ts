import { join, resolve } from 'node:path';
import pino from 'pino';
import {
  DEFAULT_LISTEN_PORT,
  DEFAULT_POLL_INTERVAL_MS,
  FlotillaError,
  generateKey,
  type TargetDevice,
} from '@flotilla/protocol';
import { assertProvisionable, ensureIdentity, readConfig } from './config/config-file.js';
import type { ModelContext } from './compose/target-model.js';
import { HttpControlPlane } from './control-plane/control-plane.js';
import { controlPlaneCas } from './util/trust.js';
import { ControlPlaneSession } from './control-plane/session.js';
import { DockerEngine } from './engine/docker-engine.js';
import { registryAuthFor } from './engine/registry-auth.js';
import { AgentActions } from './device-api/agent-actions.js';
import { listenDeviceApi, type DeviceApiListener } from './device-api/listen.js';
import { PendingRequests } from './device-api/pending-requests.js';
import { StopHolds } from './device-api/stop-holds.js';
import { selectHostConfig } from './host/host-config.js';
import { selectHostPower } from './host/host-power.js';
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
import { Observed } from './reconcile/observed.js';
import { Reconciler } from './reconcile/reconciler.js';
import { ReleaseWatch } from './rollback/release-watch.js';
import { CpuSampler, collectMetrics } from './report/metrics.js';
import { AgentHostOs } from './hostos/agent-host-os.js';
import { readOsRelease } from './host/os-release.js';
import { preloadAtStart } from './preload/preload-at-start.js';
import { tightenPrivateTree } from './store/private-files.js';
import { openStore } from './store/store.js';
import { TargetSource } from './target/target-source.js';
import type { AgentHandle, AgentOptions, AgentState } from './agent-types.js';
import { Wakeable } from './util/wakeable.js';
import { UpdateGate } from './window/update-gate.js';

export type { AgentHandle, AgentOptions, AgentState } from './agent-types.js';

/**
 * The composition root: reads config.json, opens the store and wires the agent's parts, each behind a narrow
 * interface: the target source (target/), the reconciler and its controller (reconcile/), the device actions and
 * the local API (device-api/), on managed devices the control-plane session (control-plane/), and through their
 * entry points a preloaded release (preload/preload-at-start.ts) and A/B host OS updates (hostos/agent-host-os.ts).
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
  await preloadAtStart({ engine, store, dir: options.preloadDir ?? join(options.dataDir, 'preload'), log });
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
  // The host OS update (hostos/): shown in the report, told of new targets, started once the session is.
  const hostOs = new AgentHostOs(() => session?.reportSoon());
  const view = () => ({ ...observed.view(targets.model()), rollback: watch.rollback(), osUpdate: hostOs.update });
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
            hostOs.follow(targets.device()?.os);
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
  await hostOs.start({
    hostOS: file.raw.hostOS,
    dataDir: options.dataDir,
    cmdlineFile: options.hostOsCmdline,
    controlPlane: apiEndpoint ? { apiEndpoint, uuid, deviceApiKey, ca } : undefined,
    engine,
    connected: session ? () => session?.connected ?? false : undefined,
    runningVersion: osRelease.version,
    deltas: () => deltasEnabled(targets.device()),
    target: () => targets.device()?.os,
    reboot: () => hostPower.reboot(),
    log,
    system: (message) => logs.system(message),
  });

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
