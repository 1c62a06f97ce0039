import { mkdir, rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import { FlotillaError, formatPlatform, runsOn } from '@flotilla/protocol';
import type { DeltaFetcher } from '../deltas/delta-fetcher.js';
import type { ContainerEngine, RegistryAuth } from '../engine/container-engine.js';
import type { ResumablePull } from '../pull/resumable-pull.js';
import { PRIVATE_DIR_MODE } from '../store/private-files.js';
import { releaseLocks, takeLocks } from '../locks/update-locks.js';
import type { Store } from '../store/store.js';
import type { Action, Executors, Step, StepOf } from './steps.js';

export interface ExecutorDeps {
  engine: ContainerEngine;
  store: Store;
  log: Logger;
  /** Registry credentials for an image ref, if it lives on our control plane's registry. */
  registryAuth: (ref: string) => RegistryAuth | undefined;
  /** Download progress per image ref (0–100), read by the reporter; entries are removed when a pull ends. */
  progress: Map<string, number>;
  /** Told whenever download progress changes (the reporter rate-limits what it sends). */
  onProgress: () => void;
  serviceLockDir: (appId: number, serviceName: string) => string;
  /** Gets an image by delta when it can (false: pull it); absent on unmanaged devices. */
  deltas?: Pick<DeltaFetcher, 'fetch'> | undefined;
  /** Pulls an image of our registry itself, resumably (false: the engine pulls it); absent on unmanaged devices. */
  pulls?: Pick<ResumablePull, 'pull'> | undefined;
}

const DEFAULT_STOP_SECONDS = 10;

/**
 * Refuses an image the device cannot execute (built for another CPU architecture): started, it would only crash
 * with "exec format error" and restart forever. Checked once the image is local, before anything depends on it.
 */
async function assertRunnable(engine: ContainerEngine, ref: string): Promise<void> {
  const device = await engine.platform();
  const image = device && (await engine.imagePlatform(ref));
  if (!device || !image || runsOn(image, device)) return;
  throw new FlotillaError(
    'PLATFORM_MISMATCH',
    `image ${ref} is built for ${formatPlatform(image)}, and this device runs ${formatPlatform(device)}; deploy a release built for ${formatPlatform(device)}`,
  );
}

/** The mapped executor table: one entry per action of StepArgs (a missing one does not compile). */
export function createExecutors(deps: ExecutorDeps): Executors {
  const { engine, store } = deps;
  const fetched = async (image: string) => {
    // INVARIANT: recorded only once present, so cleanup never touches an image we neither pulled nor ran.
    store.addKnownImage(image);
    await assertRunnable(engine, image);
  };
  return {
    fetch: async (s, signal) => {
      if ((await engine.imageId(s.image)) === undefined) {
        const progress = (percent: number) => {
          if (deps.progress.get(s.image) === percent) return;
          deps.progress.set(s.image, percent);
          deps.onProgress();
        };
        progress(0);
        try {
          if (deps.deltas && (await deps.deltas.fetch(s, signal, progress))) return await fetched(s.image);
          progress(0);
          if (deps.pulls && (await deps.pulls.pull(s.image, signal, progress))) return await fetched(s.image);
          progress(0);
          await engine.pull(s.image, deps.registryAuth(s.image), (p) => progress(p.percent), signal);
        } finally {
          deps.progress.delete(s.image);
        }
      }
      await fetched(s.image);
    },
    removeImage: async (s) => {
      try {
        await engine.removeImage(s.image);
      } catch (error) {
        // 409: something outside our labels (a user's container) still uses it; it is no longer ours to clean.
        if (!(typeof error === 'object' && error !== null && (error as { statusCode?: number }).statusCode === 409))
          throw error;
        deps.log.warn({ image: s.image }, 'image still in use outside the agent; no longer managed');
      }
      store.forgetImage(s.image);
    },
    createNetwork: (s) => engine.createNetwork(s.network.spec),
    removeNetwork: (s) => engine.removeNetwork(s.name),
    createVolume: (s) => engine.createVolume(s.volume.spec),
    removeVolume: (s) => engine.removeVolume(s.name),
    createContainer: async (s) => {
      const svc = s.service;
      // Adopt a locally present image so cleanup can remove it once no release needs it.
      store.addKnownImage(svc.image);
      await assertRunnable(engine, svc.image);
      const lockDir = deps.serviceLockDir(svc.appId, svc.serviceName);
      // WARNING: private like the rest of the data folder (0700, see store/private-files.ts); a service that runs as
      // a non-root user cannot use /tmp/balena (it could not write there before either: a root-owned 0755 folder).
      await mkdir(lockDir, { recursive: true, mode: PRIVATE_DIR_MODE });
      if (svc.strategy === 'hand-over') await rm(`${lockDir}/handover-complete`, { force: true });
      await engine.createContainer(
        svc.spec,
        svc.extraNetworks.map((network) => ({ network, aliases: [svc.serviceName] })),
      );
    },
    startContainer: (s) => engine.startContainer(s.containerId),
    stopContainer: (s) => engine.stopContainer(s.containerId, DEFAULT_STOP_SECONDS),
    killContainer: async (s) => {
      await engine.stopContainer(s.containerId, DEFAULT_STOP_SECONDS);
      await engine.removeContainer(s.containerId);
    },
    updateMetadata: (s) => engine.renameContainer(s.containerId, s.name),
    takeLock: async (s) => {
      const dirs = s.services.map((name) => deps.serviceLockDir(s.appId, name));
      // Not an error: the next round's scan finds the service's lock, and the app waits for it like any lock.
      if (!(await takeLocks(dirs))) deps.log.info({ appId: s.appId }, 'a service took the update lock first');
    },
    releaseLock: (s) => releaseLocks(s.services.map((name) => deps.serviceLockDir(s.appId, name))),
  };
}

/**
 * Test-only crash injection: FLOTILLA_AGENT_FAILPOINT=before:<action> or after:<action> (optionally `:<n>` for the
 * n-th occurrence) makes the process SIGKILL itself there, so tests can prove kill -9 at that instant converges.
 */
function failpoint(): { when: 'before' | 'after'; action: string; nth: number } | undefined {
  const spec = process.env.FLOTILLA_AGENT_FAILPOINT;
  if (!spec) return undefined;
  const [when, action, nth] = spec.split(':');
  if ((when !== 'before' && when !== 'after') || !action) return undefined;
  return { when, action, nth: Number(nth ?? '1') };
}
const fp = failpoint();
let fpCount = 0;
function maybeCrash(when: 'before' | 'after', action: string): void {
  if (fp && fp.when === when && fp.action === action && ++fpCount >= fp.nth) process.kill(process.pid, 'SIGKILL');
}

export async function executeStep(
  executors: Executors,
  s: Exclude<Step, { action: 'wait' }>,
  signal: AbortSignal,
): Promise<void> {
  maybeCrash('before', s.action);
  // The table is indexed by the step's own action, so the argument type matches; TS cannot correlate the union.
  const run = executors[s.action] as (step: StepOf<Exclude<Action, 'wait'>>, signal: AbortSignal) => Promise<void>;
  await run(s, signal);
  maybeCrash('after', s.action);
}
