import { readFile, writeFile } from 'node:fs/promises';
import Docker from 'dockerode';
import type { Command } from 'commander';
import {
  FlotillaError,
  USER_ROUTES,
  buildTargetState,
  configJsonRequestSchema,
  configJsonSchema,
  slugSchema,
} from '@flotilla/protocol';
import type { ConfigJsonRequest } from '@flotilla/protocol';
import { checkWifi } from '../os-image/boot-files.js';
import { configureImage, readImageConfig } from '../os-image/configure-image.js';
import type { ImageConfig } from '../os-image/configure-image.js';
import { preloadImage } from '../os-image/preload-image.js';
import type { PreloadRequest } from '../os-image/preload-image.js';
import { platformFlag, targetPlatform } from '../images/platform.js';
import { emit, progress } from '../output/output.js';
import { checkArg, leaf, releaseRef, runCommand } from './context.js';
import { registerOsReleaseCommands } from './os-release.js';
import type { CommandContext } from './context.js';

interface OsConfigOptions {
  output?: string;
  hostname?: string;
  dev?: boolean;
  persistentLogging?: boolean;
  sshKey?: string[];
  wifiSsid?: string;
  wifiKey?: string;
  pollInterval?: string;
  json?: boolean;
}

interface OsConfigureOptions extends OsConfigOptions {
  fleet?: string;
  config?: string;
  prod?: boolean;
}

/** The request body from the flags, validated locally with the protocol schema so mistakes name the flag. */
export function configJsonRequest(opts: OsConfigOptions): ConfigJsonRequest {
  const body: Record<string, unknown> = {};
  if (opts.hostname !== undefined) body.hostname = opts.hostname;
  if (opts.dev) body.developmentMode = true;
  if (opts.persistentLogging) body.persistentLogging = true;
  if (opts.sshKey && opts.sshKey.length > 0) body.sshKeys = opts.sshKey;
  if (opts.wifiSsid !== undefined) body.wifiSsid = opts.wifiSsid;
  if (opts.wifiKey !== undefined) body.wifiKey = opts.wifiKey;
  if (opts.pollInterval !== undefined) {
    if (!/^\d+$/.test(opts.pollInterval))
      throw new FlotillaError(
        'VALIDATION_FAILED',
        `invalid --poll-interval ${JSON.stringify(opts.pollInterval)}: give ms`,
      );
    body.appUpdatePollInterval = Number(opts.pollInterval);
  }
  return checkArg(configJsonRequestSchema, body, 'os config options');
}

function sshKeyOption(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The config.json `os configure` writes: the fleet's from the server (as `os config` makes it), or a file's with the
 *  flags laid over it. Both are validated before the image is opened. */
async function configFor(ctx: CommandContext, opts: OsConfigureOptions): Promise<Record<string, unknown>> {
  if ((opts.fleet === undefined) === (opts.config === undefined))
    throw new FlotillaError(
      'VALIDATION_FAILED',
      'give exactly one of --fleet <slug> (asks the server) or --config <file>',
    );
  if (opts.dev && opts.prod) throw new FlotillaError('VALIDATION_FAILED', '--dev and --prod exclude each other');
  const body = configJsonRequest(opts);
  if (opts.fleet !== undefined) {
    const slug = checkArg(slugSchema, opts.fleet, 'fleet');
    return (await (await ctx.client()).call(USER_ROUTES.fleetConfigJson, { params: { slug }, body })) as Record<
      string,
      unknown
    >;
  }
  const file = opts.config as string;
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new FlotillaError('VALIDATION_FAILED', `cannot read --config ${file}: ${error.code}`);
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FlotillaError('INVALID_CONFIG_JSON', `${file} is not valid JSON`);
  }
  const checked = configJsonSchema.safeParse(parsed);
  if (!checked.success)
    throw new FlotillaError(
      'INVALID_CONFIG_JSON',
      `${file}: ${checked.error.issues[0]?.path.join('.') ?? ''} ${checked.error.issues[0]?.message ?? 'invalid'}`,
    );
  const config: Record<string, unknown> = { ...checked.data };
  if (body.hostname !== undefined) config.hostname = body.hostname;
  if (opts.dev) config.developmentMode = true;
  if (opts.prod) config.developmentMode = false;
  if (body.persistentLogging) config.persistentLogging = true;
  if (body.appUpdatePollInterval !== undefined) config.appUpdatePollInterval = body.appUpdatePollInterval;
  const os = { ...((config.os as Record<string, unknown> | undefined) ?? {}) };
  if (body.sshKeys) os.sshKeys = [...new Set([...((os.sshKeys as string[] | undefined) ?? []), ...body.sshKeys])];
  // As the server writes it for `--fleet`, so both ways give the same config.json (the keyfile is what NetworkManager reads).
  if (body.wifiSsid !== undefined)
    os.network = {
      ...((os.network as Record<string, unknown> | undefined) ?? {}),
      wifi: { ssid: body.wifiSsid, ...(body.wifiKey === undefined ? {} : { psk: body.wifiKey }) },
    };
  if (body.sshKeys || body.wifiSsid !== undefined) config.os = os;
  return config;
}

function describeImageConfig(found: ImageConfig): string {
  const p = found.partition;
  const lines = [
    `${found.image}: boot partition ${p.index} (${p.scheme.toUpperCase()}, FAT${p.fat}, label ${p.label || '(none)'})`,
  ];
  lines.push(found.config === undefined ? 'no config.json' : `config.json:\n${JSON.stringify(found.config, null, 2)}`);
  for (const connection of found.connections) lines.push(`${connection.file}:\n${connection.text.trimEnd()}`);
  return `${lines.join('\n')}\n`;
}

interface OsPreloadOptions {
  fleet: string;
  release?: string;
  output?: string;
  platform?: string;
  json?: boolean;
}

/**
 * The manifest of `os preload` but its images: the release (the fleet's target unless named, and only a successful
 * one of this fleet) and the target a device of the fleet gets for it, built by the server's own builder from the
 * fleet's variables and configuration (a device has none of its own before it registers).
 */
async function preloadManifest(
  ctx: CommandContext,
  opts: OsPreloadOptions,
): Promise<{ manifest: PreloadRequest['manifest']; deviceType: string }> {
  const client = await ctx.client();
  const slug = checkArg(slugSchema, opts.fleet, 'fleet');
  const fleet = await client.call(USER_ROUTES.getFleet, { params: { slug } });
  const ref = opts.release === undefined ? fleet.targetRelease?.commit : releaseRef(opts.release);
  if (ref === undefined || ref === null)
    throw new FlotillaError('RELEASE_NOT_FOUND', `fleet ${slug} has no release to preload; deploy one first`);
  const release = await client.call(USER_ROUTES.getRelease, { params: { ref: String(ref) } });
  if (release.fleet !== fleet.slug)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `release ${release.commit} belongs to fleet ${release.fleet}, not ${slug}`,
    );
  if (release.status !== 'success')
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `release ${release.commit} is ${release.status}; only a successful release can be preloaded`,
    );
  const fleetEnv = (await client.call(USER_ROUTES.listFleetEnv, { params: { slug } })).items;
  const fleetConfig = (await client.call(USER_ROUTES.listFleetConfig, { params: { slug } })).items;
  const state = buildTargetState({
    // No device yet: its name comes from the server when it registers, and the poll that follows replaces this.
    device: { uuid: 'preload', name: '' },
    fleet: { id: fleet.id, uuid: fleet.uuid, name: fleet.name },
    release: {
      id: release.id,
      commit: release.commit,
      composition: release.composition,
      services: release.services.map((s) => ({ id: s.id, name: s.name, image: s.image })),
    },
    fleetEnv,
    deviceEnv: [],
    fleetConfig,
    deviceConfig: [],
  });
  const manifest: PreloadRequest['manifest'] = {
    version: 1,
    createdAt: new Date().toISOString(),
    fleet: { id: fleet.id, uuid: fleet.uuid, slug: fleet.slug },
    release: { id: release.id, commit: release.commit, version: release.version },
    target: state.preload as PreloadRequest['manifest']['target'], // the one key buildTargetState made
  };
  return { manifest, deviceType: fleet.deviceType };
}

export function registerOsCommands(program: Command): void {
  const os = program.command('os').description('device OS images and their configuration');
  leaf(os, 'config <fleet>', 'write a config.json that provisions a new device into the fleet')
    .requiredOption('-o, --output <file>', 'where to write config.json')
    .option('--hostname <name>', 'device hostname')
    .option('--dev', 'development mode (local mode, open engine; never for production)')
    .option('--persistent-logging', 'keep logs across reboots')
    .option('--ssh-key <key>', 'authorized SSH public key (repeatable)', sshKeyOption)
    .option('--wifi-ssid <ssid>', 'WiFi network name')
    .option('--wifi-key <key>', 'WiFi passphrase')
    .option('--poll-interval <ms>', 'target state poll interval in ms (min 10000)')
    .action(async (slug: string, opts: OsConfigOptions & { output: string }) =>
      runCommand(opts, async (ctx) => {
        const body = configJsonRequest(opts);
        const config = await (await ctx.client()).call(USER_ROUTES.fleetConfigJson, {
          params: { slug: checkArg(slugSchema, slug, 'fleet') },
          body,
        });
        // WARNING: the file holds a provisioning key; keep it private.
        await writeFile(opts.output, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
        emit(ctx.output, { file: opts.output, config }, () => `wrote ${opts.output} for fleet ${slug}\n`);
      }),
    );
  leaf(os, 'configure <image>', "write a fleet's config.json (and WiFi) into a disk image's boot partition")
    .option('--fleet <slug>', 'fleet to provision into (asks the server for a config.json)')
    .option('--config <file>', 'write this config.json instead of asking the server')
    .option('-o, --output <file>', 'configure a new copy here (default for .img.gz/.zip: the name without .gz/.zip)')
    .option('--hostname <name>', 'device hostname')
    .option('--dev', 'development mode (local mode, open engine; never for production)')
    .option('--prod', 'production mode (the default)')
    .option('--persistent-logging', 'keep logs across reboots')
    .option('--ssh-key <key>', 'authorized SSH public key (repeatable)', sshKeyOption)
    .option('--wifi-ssid <ssid>', 'WiFi network name (writes a NetworkManager connection)')
    .option('--wifi-key <key>', 'WiFi WPA passphrase')
    .option('--poll-interval <ms>', 'target state poll interval in ms (min 10000)')
    .action(async (image: string, opts: OsConfigureOptions) =>
      runCommand(opts, async (ctx) => {
        const wifi = checkWifi(opts.wifiSsid, opts.wifiKey);
        const config = await configFor(ctx, opts);
        const result = await configureImage({ image, output: opts.output, config, ...(wifi ? { wifi } : {}) });
        emit(ctx.output, result, () => {
          const from = result.extractedFrom ? `decompressed ${result.extractedFrom} to ${result.image}; ` : '';
          const p = result.partition;
          return `${from}wrote ${result.files.join(', ')} to boot partition ${p.index} (FAT${p.fat}, label ${p.label || '(none)'}) of ${result.image}\n`;
        });
      }),
    );
  registerOsReleaseCommands(os);
  leaf(os, 'read-config <image>', "print the config.json and connections a disk image's boot partition holds")
    .option('--show-secrets', 'print keys and WiFi passphrases instead of <redacted>')
    .action(async (image: string, opts: { json?: boolean; showSecrets?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const found = await readImageConfig(image, opts.showSecrets === true);
        emit(ctx.output, found, () => describeImageConfig(found));
      }),
    );
  leaf(os, 'preload <image>', "write a fleet's release into a disk image's data partition, run at first boot offline")
    .requiredOption('--fleet <slug>', 'fleet whose release to preload')
    .option('--release <release>', "release id or commit (default: the fleet's target release)")
    .option('-o, --output <file>', 'preload a new copy here (default for .img.gz/.zip: the name without .gz/.zip)')
    .option('--platform <os/arch>', "platform of the images to pull (default: the fleet's device type)")
    .action(async (image: string, opts: OsPreloadOptions) =>
      runCommand(opts, async (ctx) => {
        const { manifest, deviceType } = await preloadManifest(ctx, opts);
        const { url, token } = await ctx.credentials();
        const result = await preloadImage({
          image,
          ...(opts.output !== undefined ? { output: opts.output } : {}),
          manifest,
          platform: targetPlatform({ slug: manifest.fleet.slug, deviceType }, platformFlag(opts.platform)),
          auth: { username: 'flotilla', password: token, serveraddress: new URL(url).host },
          docker: new Docker(),
          log: (line) => progress(ctx.output, line),
        });
        emit(ctx.output, result, () => {
          const from = result.extractedFrom ? `decompressed ${result.extractedFrom} to ${result.image}; ` : '';
          const p = result.partition;
          return `${from}preloaded release ${result.release} (${result.images.length} image(s), ${(result.bytes / 1024 / 1024).toFixed(1)} MiB) into data partition ${p.index} (${p.label}) of ${result.image}\n`;
        });
      }),
    );
}
