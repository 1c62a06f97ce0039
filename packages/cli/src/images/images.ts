import type Docker from 'dockerode';
import { FlotillaError, formatPlatform, runsOn, type ImagePlatform } from '@flotilla/protocol';
import type { ProjectService } from '../compose/load-project.js';
import { contextTar } from './context-tar.js';
import { enginePlatform, explainBuildFailure, inspectPlatform, traceBuildLine } from './platform.js';
import type { BuildTrace, TargetPlatform } from './platform.js';

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  progress?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
  aux?: { ID?: string; Digest?: string; Tag?: string };
}

function follow(
  docker: Docker,
  stream: NodeJS.ReadableStream,
  onEvent: (event: ProgressEvent) => void,
): Promise<ProgressEvent[]> {
  return new Promise((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null, events: ProgressEvent[]) => (error ? reject(error) : resolve(events)),
      (event: ProgressEvent) => onEvent(event),
    );
  });
}

/** Logs pull/push progress as state changes only, not every byte-count tick, to keep the output readable. */
function statusLogger(log: (line: string) => void): (event: ProgressEvent) => void {
  let last = '';
  return (e) => {
    const line = e.status && e.id ? `${e.id}: ${e.status}` : (e.status ?? '');
    if (line !== '' && line !== last && !e.progress) log(line);
    last = line;
  };
}

function failure(events: ProgressEvent[]): string | undefined {
  const bad = events.find((e) => e.error !== undefined || e.errorDetail !== undefined);
  return bad ? (bad.errorDetail?.message ?? bad.error ?? 'unknown error') : undefined;
}

/**
 * Builds one service with the local engine for `target` and tags it `ref`; build output lines go to `log`. Returns
 * the final stage's base image, so that a platform mismatch found afterwards can name it.
 */
export async function buildService(
  docker: Docker,
  service: ProjectService,
  ref: string,
  target: TargetPlatform,
  log: (line: string) => void,
): Promise<{ base?: string | undefined }> {
  if (!service.context) throw new Error(`service ${service.name} has no build context`);
  const options: Docker.ImageBuildOptions = {
    t: ref,
    dockerfile: service.dockerfile,
    buildargs: service.buildArgs,
    rm: true,
    forcerm: true,
    platform: target.name,
  };
  if (service.target !== undefined) options.target = service.target;
  const trace: BuildTrace = { execFormatError: false };
  let events: ProgressEvent[];
  try {
    const stream = await docker.buildImage(await contextTar(service.context, service.dockerfile), options);
    events = await follow(docker, stream, (e) => {
      for (const line of (e.stream ?? '').split('\n')) {
        if (line.trim() === '') continue;
        traceBuildLine(trace, line);
        log(line.trimEnd());
      }
    });
  } catch (error) {
    throw await buildFailure(
      docker,
      service.name,
      error instanceof Error ? error.message : String(error),
      trace,
      target,
      error,
    );
  }
  const message = failure(events);
  if (message) throw await buildFailure(docker, service.name, message.trim(), trace, target);
  return { base: trace.base };
}

/** A failed build as one line: the platform explanation when that is the cause, else the engine's message. */
async function buildFailure(
  docker: Docker,
  service: string,
  message: string,
  trace: BuildTrace,
  target: TargetPlatform,
  cause?: unknown,
): Promise<FlotillaError> {
  // Only an exec format error needs the engine's own platform, so the engine is asked only then.
  const engine = trace.execFormatError || /exec format error/i.test(message) ? await enginePlatform(docker) : undefined;
  // ANSI colour codes: the engine paints RUN output red.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is what is removed
  const plain = message.replace(/\u001b\[[0-9;]*m/g, '');
  return (
    explainBuildFailure(service, plain, trace, target, engine) ??
    new FlotillaError(
      'BUILD_FAILED',
      `building ${service} failed: ${plain}`,
      cause === undefined ? undefined : { cause },
    )
  );
}

/**
 * Makes `source` (a service's `image:`) available in the local engine for `target`: used as is when present for a
 * platform the devices run, else pulled for `target`, with `auth` when it lives in `auth.serveraddress` (this
 * Flotilla's registry). Pull progress lines go to `log`. A local copy for another platform is re-pulled, since a
 * multi-platform image has the right variant; when that pull fails the copy stays and the platform check after this
 * refuses it with the reason.
 */
export async function ensureImage(
  docker: Docker,
  source: string,
  auth: RegistryAuth,
  target: TargetPlatform,
  log: (line: string) => void,
): Promise<void> {
  let local: ImagePlatform;
  try {
    local = await inspectPlatform(docker, source);
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404)
      throw new FlotillaError(
        'BUILD_FAILED',
        `image ${source}: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      );
    log(`pulling ${source} for ${target.name}`);
    const reason = await pullImage(docker, source, auth, target, log);
    if (reason !== undefined)
      throw new FlotillaError(
        'BUILD_FAILED',
        `image ${source} is not available locally and could not be pulled: ${reason}`,
      );
    return;
  }
  if (runsOn(local, target.platform)) return;
  log(`the local copy of ${source} is ${formatPlatform(local)}; pulling ${target.name}`);
  const reason = await pullImage(docker, source, auth, target, log);
  if (reason !== undefined) log(`could not pull ${source} for ${target.name}: ${reason}`);
}

/** Pulls `source` for `target`; the failure reason, or undefined when it was pulled. */
async function pullImage(
  docker: Docker,
  source: string,
  auth: RegistryAuth,
  target: TargetPlatform,
  log: (line: string) => void,
): Promise<string | undefined> {
  const options: Record<string, unknown> = { platform: target.name };
  if (registryHostOf(source) === auth.serveraddress) options.authconfig = auth;
  try {
    const stream = await docker.pull(source, options);
    return failure(await follow(docker, stream, statusLogger(log)))?.trim();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** The registry host of an image reference, as the engine reads it (no dot, colon or "localhost": Docker Hub). */
export function registryHostOf(ref: string): string {
  const first = ref.split('/')[0] ?? '';
  return ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')
    ? first
    : 'docker.io';
}

/** Tags a local image for the registry. */
export async function tagImage(docker: Docker, source: string, ref: string): Promise<void> {
  const at = ref.lastIndexOf(':');
  try {
    await docker.getImage(source).tag({ repo: ref.slice(0, at), tag: ref.slice(at + 1) });
  } catch (error) {
    throw new FlotillaError(
      'BUILD_FAILED',
      `image ${source} could not be tagged: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** Pushes `ref` and returns the manifest digest the registry reported. */
export async function pushImage(
  docker: Docker,
  ref: string,
  auth: RegistryAuth,
  log: (line: string) => void,
): Promise<string> {
  let events: ProgressEvent[];
  try {
    const stream = await docker.getImage(ref).push({ authconfig: auth });
    events = await follow(docker, stream, statusLogger(log));
  } catch (error) {
    throw new FlotillaError(
      'PUSH_FAILED',
      `pushing ${ref} failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  const message = failure(events);
  if (message) throw new FlotillaError('PUSH_FAILED', `pushing ${ref} failed: ${message.trim()}`);
  const digest =
    events.map((e) => e.aux?.Digest).find((d) => d !== undefined) ??
    /digest: (sha256:[a-f0-9]{64})/.exec(events.map((e) => e.status ?? '').join('\n'))?.[1];
  if (!digest) throw new FlotillaError('PUSH_FAILED', `pushing ${ref}: the registry reported no digest`);
  return digest;
}
