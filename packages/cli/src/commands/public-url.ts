import type { Command } from 'commander';
import { FlotillaError, USER_ROUTES, deviceRefSchema } from '@flotilla/protocol';
import type { PublicUrl } from '@flotilla/protocol';
import { emit, formatDetails } from '../output/output.js';
import { parsePort } from '../remote/tunnel-mapping.js';
import { checkArg, leaf, runCommand } from './context.js';

const deviceParams = (ref: string) => ({ uuid: checkArg(deviceRefSchema, ref, 'device') });

function publicUrlDetails(p: PublicUrl): string {
  return formatDetails([
    ['public url', p.enabled ? 'on' : 'off'],
    ['url', p.url],
    ['device port', p.port],
  ]);
}

export function portOption(text: string): number {
  const port = parsePort(text, 1);
  if (port === undefined)
    throw new FlotillaError('VALIDATION_FAILED', `invalid --port ${JSON.stringify(text)}: give a port from 1 to 65535`);
  return port;
}

/** `device public-url [show] <device>` shows; `device public-url enable|disable <device>` switches. */
export function registerPublicUrlCommands(device: Command): void {
  const publicUrl = device
    .command('public-url')
    .description('show, enable or disable the public URL of a device’s HTTP service');

  // The default subcommand, so `device public-url <device>` shows. A separate leaf rather than an action on
  // `public-url`: commander would let that parent take the --json meant for `enable` and `disable`.
  publicUrl
    .command('show <device>', { isDefault: true })
    .description('show whether the public URL is on, its address and device port (the default)')
    .option('--json', 'print machine-readable JSON')
    .action(async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const found = await (await ctx.client()).call(USER_ROUTES.getDevicePublicUrl, { params: deviceParams(ref) });
        emit(ctx.output, found, () => publicUrlDetails(found));
      }),
    );

  leaf(publicUrl, 'enable <device>', 'make a device port reachable through the server at a public URL')
    .option('--port <port>', 'the device port the URL reaches', '80')
    .action(async (ref: string, opts: { port: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const enabled = await (await ctx.client()).call(USER_ROUTES.enableDevicePublicUrl, {
          params: deviceParams(ref),
          body: { port: portOption(opts.port) },
        });
        emit(
          ctx.output,
          enabled,
          () => `${enabled.url ?? '(no URL given by the server)'} → ${ref} port ${enabled.port}\n`,
        );
      }),
    );

  leaf(publicUrl, 'disable <device>', 'turn a device’s public URL off; its open connections close').action(
    async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        await (await ctx.client()).call(USER_ROUTES.disableDevicePublicUrl, { params: deviceParams(ref) });
        emit(ctx.output, { device: ref, enabled: false }, () => `public URL of ${ref} disabled\n`);
      }),
  );
}
