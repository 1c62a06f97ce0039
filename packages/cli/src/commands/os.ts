import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { USER_ROUTES, configJsonRequestSchema, slugSchema } from '@flotilla/protocol';
import type { ConfigJsonRequest } from '@flotilla/protocol';
import { emit } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

interface OsConfigOptions {
  output: string;
  hostname?: string;
  dev?: boolean;
  persistentLogging?: boolean;
  sshKey?: string[];
  wifiSsid?: string;
  wifiKey?: string;
  pollInterval?: string;
  json?: boolean;
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
  if (opts.pollInterval !== undefined) body.appUpdatePollInterval = Number(opts.pollInterval);
  return checkArg(configJsonRequestSchema, body, 'os config options');
}

export function registerOsCommands(program: Command): void {
  const os = program.command('os').description('device OS images and their configuration');
  leaf(os, 'config <fleet>', 'write a config.json that provisions a new device into the fleet')
    .requiredOption('-o, --output <file>', 'where to write config.json')
    .option('--hostname <name>', 'device hostname')
    .option('--dev', 'development mode (local mode, open engine; never for production)')
    .option('--persistent-logging', 'keep logs across reboots')
    .option('--ssh-key <key>', 'authorized SSH public key (repeatable)', (value: string, previous: string[] = []) => [
      ...previous,
      value,
    ])
    .option('--wifi-ssid <ssid>', 'WiFi network name')
    .option('--wifi-key <key>', 'WiFi passphrase')
    .option('--poll-interval <ms>', 'target state poll interval in ms (min 10000)')
    .action(async (slug: string, opts: OsConfigOptions) =>
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
}
