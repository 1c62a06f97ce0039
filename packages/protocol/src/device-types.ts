/**
 * Which CPU architecture a device type runs, as an OCI platform (`os/architecture[/variant]`), so that images are
 * built, pulled and checked for what the fleet's devices can execute. The architectures are balena's (amd64,
 * aarch64, armv7hf, rpi, i386), and the device type names are balena's too, so fleets moved from balenaCloud keep
 * their types.
 */
export interface Platform {
  os: 'linux';
  architecture: 'amd64' | 'arm64' | 'arm' | '386';
  variant?: 'v6' | 'v7' | 'v8';
}

const BY_ARCH = {
  amd64: { os: 'linux', architecture: 'amd64' },
  aarch64: { os: 'linux', architecture: 'arm64' },
  armv7hf: { os: 'linux', architecture: 'arm', variant: 'v7' },
  rpi: { os: 'linux', architecture: 'arm', variant: 'v6' },
  i386: { os: 'linux', architecture: '386' },
} as const satisfies Record<string, Platform>;

/** Device type → balena architecture, for the common boards; `generic-*` types are matched by name below. */
const DEVICE_TYPE_ARCH: Record<string, keyof typeof BY_ARCH> = {
  'intel-nuc': 'amd64',
  'genericx86-64-ext': 'amd64',
  'qemux86-64': 'amd64',
  'surface-pro-6': 'amd64',
  'up-board': 'amd64',
  raspberrypi5: 'aarch64',
  'raspberrypi4-64': 'aarch64',
  'raspberrypi400-64': 'aarch64',
  'raspberrypicm4-ioboard': 'aarch64',
  'raspberrypi3-64': 'aarch64',
  'raspberrypi0-2w-64': 'aarch64',
  'jetson-nano': 'aarch64',
  'jetson-xavier': 'aarch64',
  'jetson-orin-nano-devkit-nvme': 'aarch64',
  'rockpi-4b-rk3399': 'aarch64',
  'nanopc-t4': 'aarch64',
  'imx8mm-var-dart': 'aarch64',
  qemux86: 'i386',
  raspberrypi3: 'armv7hf',
  raspberrypi2: 'armv7hf',
  fincm3: 'armv7hf',
  'beaglebone-black': 'armv7hf',
  'beaglebone-green': 'armv7hf',
  'raspberry-pi': 'rpi',
};

const GENERIC = /^generic-(amd64|aarch64|armv7ahf|armv7hf|rpi|i386)$/;

/**
 * Every device type Flotilla knows, generic ones first: what a fleet may be created with in a picker (the dashboard).
 * INVARIANT: each one has a platform (platformOfDeviceType), which the test checks.
 */
export const DEVICE_TYPES: readonly string[] = [
  ...['amd64', 'aarch64', 'armv7hf', 'rpi', 'i386'].map((arch) => `generic-${arch}`),
  ...Object.keys(DEVICE_TYPE_ARCH).sort(),
];

/** The platform a device type's devices run, or undefined when the type is not one Flotilla knows. */
export function platformOfDeviceType(deviceType: string): Platform | undefined {
  const generic = GENERIC.exec(deviceType)?.[1];
  const arch = generic
    ? generic === 'armv7ahf'
      ? 'armv7hf'
      : (generic as keyof typeof BY_ARCH)
    : DEVICE_TYPE_ARCH[deviceType];
  return arch ? { ...BY_ARCH[arch] } : undefined;
}

/** What an image says it is built for (`docker image inspect`: Os, Architecture, Variant). */
export interface ImagePlatform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

/** `linux/arm/v7`, as docker and OCI indexes write it. */
export function formatPlatform(platform: ImagePlatform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join('/');
}

/** Parses `linux/arm64`, `linux/arm/v7` (a `--platform` flag); undefined when it is not a platform Flotilla builds for. */
export function parsePlatform(text: string): Platform | undefined {
  const m = /^linux\/(amd64|arm64|arm|386)(?:\/(v6|v7|v8))?$/.exec(text);
  if (!m) return undefined;
  const architecture = m[1] as Platform['architecture'];
  const variant = m[2] as Platform['variant'] | undefined;
  if (variant && !(architecture === 'arm' ? variant !== 'v8' : architecture === 'arm64' && variant === 'v8'))
    return undefined;
  if (architecture === 'arm') return { os: 'linux', architecture, variant: variant ?? 'v7' };
  return { os: 'linux', architecture };
}

/**
 * Whether an image made for `image` (os, architecture and variant as the engine reports them) runs on `device`: the
 * same os when the image names one, the same architecture, and for 32-bit ARM a variant no newer than the device's
 * (a v7 board runs v6 code, not the reverse).
 */
export function runsOn(
  image: Pick<ImagePlatform, 'architecture' | 'variant'> & { os?: string | undefined },
  device: Platform,
): boolean {
  if (image.os !== undefined && image.os !== device.os) return false;
  if (image.architecture !== device.architecture) return false;
  if (device.architecture !== 'arm') return true;
  const level = (v: string | undefined) => Number((v ?? 'v7').slice(1));
  return level(image.variant) <= level(device.variant);
}

/**
 * The platform a container engine runs: `goArch` is its `docker version` Arch (the Go architecture names OCI uses),
 * `machine` its `docker info` Architecture (uname -m), which tells an ARMv6 board from an ARMv7 one.
 */
export function platformOfEngine(goArch: string, machine = ''): Platform | undefined {
  if (goArch === 'amd64') return { ...BY_ARCH.amd64 };
  if (goArch === 'arm64') return { ...BY_ARCH.aarch64 };
  if (goArch === 'arm') return machine.startsWith('armv6') ? { ...BY_ARCH.rpi } : { ...BY_ARCH.armv7hf };
  if (goArch === '386') return { ...BY_ARCH.i386 };
  return undefined;
}
