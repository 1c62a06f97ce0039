import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { LABELS, type CurrentApp, type TargetDevice } from '@flotilla/protocol';
import { ensureBusyboxImage, run, tempDir } from '@flotilla/testkit';
import pino from 'pino';
import { startAgent, type AgentOptions } from '../agent.js';
import { NAMESPACE_LABEL } from '../compose/names.js';
import { DELTA_TAG_PREFIX, deltaTag } from '../deltas/delta-tag.js';
import { ControlPlane } from './control-plane.js';

export const docker = new Docker({ socketPath: '/var/run/docker.sock' });

/** A per-test prefix; every engine object the test's agent creates carries it as a label value too. */
export function uniqueNamespace(): string {
  return `fat${randomBytes(3).toString('hex')}-`;
}

export function uniqueAppId(): number {
  return 100_000 + Math.floor(Math.random() * 800_000);
}

/**
 * A test image FROM the local busybox base: a marker file /release and a process that exits promptly on SIGTERM
 * (so stops take ~1 s, not the 10 s kill timeout).
 */
export async function buildImage(tag: string, marker: string): Promise<string> {
  const base = await ensureBusyboxImage();
  const dockerfile = [
    `FROM ${base}`,
    // The nonce keeps image ids unique per build: the build cache would otherwise give two tests (or two tags)
    // the same image, and one test's pull or cleanup would see the other's.
    `RUN echo ${marker} > /release && echo ${randomBytes(8).toString('hex')} > /.nonce`,
    `CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]`,
  ].join('\n');
  await run('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile });
  return tag;
}

/**
 * Like buildImage, but the container prints `tick <n>` (n = 1, 2, …) every 200 ms on stdout, and anything written
 * to /tmp/say (then removed) on stderr: log tests check order, gaps and duplicates on the ticks.
 */
export async function buildTalkingImage(tag: string): Promise<string> {
  const base = await ensureBusyboxImage();
  const script = `trap 'exit 0' TERM; i=0; while true; do i=$((i+1)); echo "tick $i"; if [ -f /tmp/say ]; then cat /tmp/say >&2; rm -f /tmp/say; fi; sleep 0.2; done`;
  const dockerfile = [
    `FROM ${base}`,
    `RUN echo ${randomBytes(8).toString('hex')} > /.nonce`,
    `CMD ["sh", "-c", ${JSON.stringify(script)}]`,
  ].join('\n');
  await run('docker', ['build', '-q', '-t', tag, '-'], { input: dockerfile });
  return tag;
}

/**
 * The namespace's containers. `Image` is the reference the agent created the container for: an image the agent
 * pulled itself or rebuilt from a delta is created from its delta tag, which stands for the digest reference
 * (deltas/delta-tag.ts), so that tag is given back as the digest reference here.
 */
export async function ourContainers(namespace: string): Promise<Docker.ContainerInfo[]> {
  const containers = await docker.listContainers({
    all: true,
    filters: JSON.stringify({ label: [`${NAMESPACE_LABEL}=${namespace}`] }),
  });
  return containers.map((c) => ({ ...c, Image: digestRefOf(c.Image) }));
}

/** `repo:flotilla-delta-<hex>` → `repo@sha256:<hex>`; any other reference as it is. */
export function digestRefOf(ref: string): string {
  const match = new RegExp(`^(.+):${DELTA_TAG_PREFIX}([0-9a-f]{64})$`).exec(ref);
  return match ? `${match[1]}@sha256:${match[2]}` : ref;
}

/** The local image `ref` names: by the reference itself or, for a digest reference, by its delta tag. */
export async function localImage(ref: string): Promise<Docker.ImageInspectInfo | undefined> {
  for (const candidate of [ref, deltaTag(ref)])
    if (candidate) {
      const found = await docker
        .getImage(candidate)
        .inspect()
        .catch(() => undefined);
      if (found) return found;
    }
  return undefined;
}

export function serviceOf(c: Docker.ContainerInfo): string {
  return c.Labels[LABELS.serviceName] ?? '';
}

/** Removes everything labelled with the namespace, plus the given image refs. Tolerates what is already gone. */
export async function cleanup(namespace: string, images: string[] = []): Promise<void> {
  const filters = JSON.stringify({ label: [`${NAMESPACE_LABEL}=${namespace}`] });
  for (const c of await docker.listContainers({ all: true, filters }))
    await docker
      .getContainer(c.Id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const n of await docker.listNetworks({ filters }))
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch(() => undefined);
  for (const v of (await docker.listVolumes({ filters })).Volumes ?? [])
    await docker
      .getVolume(v.Name)
      .remove()
      .catch(() => undefined);
  // An image the agent pulled itself (or rebuilt from a delta) is tagged with its delta tag, not its digest ref.
  const loaded = images.map((image) => deltaTag(image)).filter((tag): tag is string => tag !== undefined);
  for (const image of [...images, ...loaded])
    await docker
      .getImage(image)
      .remove({ force: true })
      .catch(() => undefined);
}

/**
 * `command` in the container. Bounded at 10 s: `docker exec` into a container the engine is restarting can block, and
 * a check polled by waitFor must fail and be polled again rather than hold the wait past its limit.
 */
export async function exec(containerId: string, command: string): Promise<string> {
  return (await run('docker', ['exec', containerId, 'sh', '-c', command], { timeoutMs: 10_000 })).stdout;
}

export interface ServiceDef {
  image: string;
  environment?: Record<string, string>;
  labels?: Record<string, string>;
  composition?: Record<string, unknown>;
  running?: boolean;
}

/** One device's target: one app with one release (for local targets: `setLocalTarget`, unmanaged devices). */
export function target(o: {
  appId: number;
  appUuid: string;
  commit: string;
  releaseId: number;
  services: Record<string, ServiceDef>;
  volumes?: string[];
  config?: Record<string, string>;
}): TargetDevice {
  let n = 0;
  return {
    name: 'test-device',
    config: o.config ?? {},
    apps: {
      [o.appUuid]: {
        id: o.appId,
        name: 'testapp',
        class: 'fleet',
        is_host: false,
        releases: {
          [o.commit]: {
            id: o.releaseId,
            services: Object.fromEntries(
              Object.entries(o.services).map(([name, s]) => [
                name,
                {
                  id: ++n,
                  image_id: o.releaseId * 100 + n,
                  image: s.image,
                  running: s.running ?? true,
                  environment: s.environment ?? {},
                  labels: s.labels ?? {},
                  composition: s.composition ?? {},
                },
              ]),
            ),
            volumes: Object.fromEntries(
              (o.volumes ?? []).map((v) => [v, { driver: 'local', driver_opts: {}, labels: {} }]),
            ),
            networks: {},
          },
        },
      },
    },
  };
}

export interface Harness {
  cp: ControlPlane;
  dir: string;
  configPath: string;
  dataDir: string;
  namespace: string;
  remove: () => Promise<void>;
}

/** The real control plane (behind its tap) and the fleet's generated config.json, plus `extraConfig` (not yet registered). */
export async function harness(extraConfig: Record<string, unknown> = {}): Promise<Harness> {
  const cp = await ControlPlane.start();
  const dir = await tempDir('flotilla-agent-it-');
  const configPath = join(dir.path, 'config.json');
  await cp.writeConfig(configPath, extraConfig);
  return {
    cp,
    dir: dir.path,
    configPath,
    dataDir: join(dir.path, 'data'),
    namespace: uniqueNamespace(),
    remove: async () => {
      await cp.close();
      await dir.remove();
    },
  };
}

/** The agents of integration tests log nothing unless FLOTILLA_TEST_LOG names a level. */
export const quiet = pino({ level: process.env.FLOTILLA_TEST_LOG ?? 'silent' });

/**
 * An agent on the harness's config, data folder and namespace, polling every 300 ms and reporting every 100 ms
 * (quick tests), without its local device API; `options` override any of that.
 */
export function startHarnessAgent(h: Harness, options: Partial<AgentOptions> = {}) {
  return startAgent({
    configPath: h.configPath,
    dataDir: h.dataDir,
    namespace: h.namespace,
    pollIntervalMs: 300,
    reportIntervalMs: 100,
    logger: quiet,
    apiPort: 0,
    ...options,
  });
}

/** What the device last reported about the fleet's app, as the server accepted it. */
export function reportedApp(h: Harness, uuid: string): CurrentApp | undefined {
  return h.cp.tap.state.get(uuid)?.apps?.[h.cp.fleet.uuid];
}

/**
 * The device reported release `commit` applied: done, with every service of it running as targeted (release_uuid).
 * WARNING: `update_status` alone is not enough; see the todo test in report/device-report.test.ts.
 */
export function reportedDone(h: Harness, uuid: string, commit: string): boolean {
  const app = reportedApp(h, uuid);
  return app?.release_uuid === commit && app.releases[commit]?.update_status === 'done';
}

/** The device key the agent wrote to config.json when it provisioned. */
export async function deviceKeyOf(h: Harness): Promise<string> {
  const config = JSON.parse(await readFile(h.configPath, 'utf8')) as { deviceApiKey?: string };
  if (!config.deviceApiKey) throw new Error('config.json has no device key yet');
  return config.deviceApiKey;
}
