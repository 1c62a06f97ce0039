import type Docker from 'dockerode';
import {
  FlotillaError,
  formatPlatform,
  parsePlatform,
  platformOfDeviceType,
  platformOfEngine,
  runsOn,
} from '@flotilla/protocol';
import type { ImagePlatform, Platform } from '@flotilla/protocol';

/** The platform a deploy builds for, and why (for error messages that say where the requirement came from). */
export interface TargetPlatform {
  platform: Platform;
  /** `linux/arm64`, as docker writes it. */
  name: string;
  /** `fleet pi (raspberrypi4-64)` or `--platform`. */
  reason: string;
}

/** The platforms `--platform` accepts, for the message when it is wrong. */
const EXAMPLES = 'linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6 or linux/386';

/** Validates a `--platform` flag before anything is built or created; undefined when the flag was not given. */
export function platformFlag(flag: string | undefined): Platform | undefined {
  if (flag === undefined) return undefined;
  const platform = parsePlatform(flag);
  if (!platform)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `invalid --platform ${JSON.stringify(flag)}: give os/arch[/variant], one of ${EXAMPLES}`,
    );
  return platform;
}

/**
 * What to build for: the flag when given (it overrides a device type that is wrong or unknown), else the fleet's
 * device type. An unknown device type is an error rather than a guess, because a wrong guess ships images the
 * devices cannot execute.
 */
export function targetPlatform(
  fleet: { slug: string; deviceType: string },
  flag: Platform | undefined,
): TargetPlatform {
  if (flag) return { platform: flag, name: formatPlatform(flag), reason: '--platform' };
  const platform = platformOfDeviceType(fleet.deviceType);
  if (!platform) {
    throw new FlotillaError(
      'UNKNOWN_DEVICE_TYPE',
      `fleet ${fleet.slug} has device type ${JSON.stringify(fleet.deviceType)}, whose CPU architecture flotilla does not know; pass --platform with the devices' platform (${EXAMPLES})`,
    );
  }
  return { platform, name: formatPlatform(platform), reason: `fleet ${fleet.slug} (${fleet.deviceType})` };
}

/** The platform of a local image (engine fields `Os`, `Architecture`, `Variant`; the typings lack Variant). */
export async function inspectPlatform(docker: Docker, ref: string): Promise<ImagePlatform> {
  const info = (await docker.getImage(ref).inspect()) as { Os?: string; Architecture?: string; Variant?: string };
  return { os: info.Os ?? '', architecture: info.Architecture ?? '', variant: info.Variant || undefined };
}

/**
 * Refuses an image the devices cannot run, before it is pushed. The engine can build or keep an image for another
 * platform without complaint (Docker 20.10's classic builder uses a local base image of the wrong architecture and
 * only warns), so this check is what keeps an "exec format error" crash loop off the devices.
 * `source` says where the image came from: a built service's base image, or an `image:` reference.
 */
export async function checkImagePlatform(
  docker: Docker,
  service: string,
  ref: string,
  target: TargetPlatform,
  source: ImageSource,
): Promise<void> {
  let image: ImagePlatform;
  try {
    image = await inspectPlatform(docker, ref);
  } catch (error) {
    throw new FlotillaError(
      'BUILD_FAILED',
      `service ${service}: image ${ref} could not be inspected: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  if (!runsOn(image, target.platform))
    throw new FlotillaError('PLATFORM_MISMATCH', mismatchMessage(service, formatPlatform(image), target, source));
}

export type ImageSource = { kind: 'build'; base?: string | undefined } | { kind: 'image'; image: string };

export function mismatchMessage(service: string, actual: string, target: TargetPlatform, source: ImageSource): string {
  const needed = `${target.reason} needs ${target.name}`;
  if (source.kind === 'image') {
    return `service ${service}: image ${source.image} is ${actual}, but ${needed}; use an image published for ${target.name}`;
  }
  if (source.base === undefined || source.base === 'scratch') {
    return `service ${service} was built for ${actual}, but ${needed}; check the FROM lines of its Dockerfile`;
  }
  // The classic builder takes the local copy of a base image whatever its platform, so a multi-platform base needs
  // the right variant pulled first; a single-platform one has to be replaced.
  return `service ${service} was built for ${actual}, but ${needed}: its base image ${source.base} is ${actual} on this machine; use a base image published for ${target.name} (for a multi-platform one, run \`docker pull --platform ${target.name} ${source.base}\` first)`;
}

/** What a build's output said, for explaining a failure. */
export interface BuildTrace {
  /** The base image of the last `FROM` step seen: the final stage's base once the build is done. */
  base?: string | undefined;
  /** The last step started, e.g. `RUN apk add curl`. */
  step?: string | undefined;
  /** A step's program could not be executed: a binary for another CPU architecture and no emulator. */
  execFormatError: boolean;
}

/** Follows the classic builder's `Step n/m : INSTRUCTION` lines and its output. */
export function traceBuildLine(trace: BuildTrace, line: string): void {
  const step = /^Step \d+\/\d+ : (.*)$/.exec(line.trim());
  if (step?.[1] !== undefined) {
    trace.step = step[1].trim();
    const from = /^FROM\s+(?:--platform=\S+\s+)?(\S+)/i.exec(trace.step);
    if (from?.[1] !== undefined) trace.base = from[1];
  }
  if (/exec format error/i.test(line)) trace.execFormatError = true;
}

/**
 * A one-line explanation of a failed build when the cause is the platform, else undefined (the engine's message is
 * then clear enough). `engine` is the build machine's own platform, when known.
 */
export function explainBuildFailure(
  service: string,
  message: string,
  trace: BuildTrace,
  target: TargetPlatform,
  engine: string | undefined,
): FlotillaError | undefined {
  // Newer engines refuse a base image that exists only for another platform instead of silently using it.
  const wrongBase = /does not match the specified platform(?:: wanted ([^,\s]+), actual: ([^\s,;)]+))?/.exec(message);
  if (wrongBase) {
    const actual = wrongBase[2] ?? 'another platform';
    const base = trace.base ?? /image with reference (\S+)/.exec(message)?.[1];
    const named = base ? `base image ${base}` : 'its base image';
    return new FlotillaError(
      'PLATFORM_MISMATCH',
      `service ${service}: ${named} is ${actual} on this machine, but ${target.reason} needs ${target.name}; use a base image published for ${target.name}${base ? ` (for a multi-platform one, run \`docker pull --platform ${target.name} ${base}\` first)` : ''}`,
    );
  }
  if (trace.execFormatError || /exec format error/i.test(message)) {
    const step = trace.step ? `step "${trace.step}"` : 'a build step';
    const machine = engine ? `this machine (${engine})` : 'this machine';
    return new FlotillaError(
      'BUILD_FAILED',
      `building ${service} for ${target.name} failed: ${step} could not run because ${machine} cannot execute ${target.name} programs (exec format error); install QEMU user emulation on the build machine (on Debian/Ubuntu: apt-get install qemu-user-static binfmt-support), or build on a ${target.name} machine`,
    );
  }
  return undefined;
}

/** The engine's own platform (`linux/amd64`), or undefined when it cannot be asked. */
export async function enginePlatform(docker: Docker): Promise<string | undefined> {
  try {
    const [version, info] = await Promise.all([docker.version(), docker.info() as Promise<{ Architecture?: string }>]);
    const platform = platformOfEngine(version.Arch, info.Architecture ?? '');
    return platform ? formatPlatform(platform) : `${version.Os}/${version.Arch}`;
  } catch {
    return undefined;
  }
}
