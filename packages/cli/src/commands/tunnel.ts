import type { Command } from 'commander';
import { USER_ROUTES, deviceRefSchema } from '@flotilla/protocol';
import { describeListener, openTunnel } from '../remote/tunnel.js';
import { parseTunnelMappings } from '../remote/tunnel-mapping.js';
import { checkArg, runCommand } from './context.js';

export function registerTunnelCommand(program: Command): void {
  program
    .command('tunnel')
    .description('forward local TCP ports to ports of a device or of its services, until Ctrl-C')
    .argument('<device>', 'name, UUID or 7+ char UUID prefix')
    .argument(
      '<mapping...>',
      '<local port>:<device port> (the device’s host) or <local port>:<service>:<device port>; local port 0: any',
    )
    .option('--bind <address>', 'local address to listen on', '127.0.0.1')
    .action(async (device: string, mappingTexts: string[], opts: { bind: string }) =>
      runCommand({}, async (ctx) => {
        const ref = checkArg(deviceRefSchema, device, 'device');
        const mappings = parseTunnelMappings(mappingTexts);
        const client = await ctx.client();
        const { token, ca } = await ctx.credentials();
        // Resolved once: a typo fails now rather than at the first connection, and a name another device takes
        // later does not redirect the tunnel.
        const found = await client.call(USER_ROUTES.getDevice, { params: { uuid: ref } });
        const label = found.name || found.uuid.slice(0, 7);
        const tunnel = await openTunnel({
          apiUrl: client.baseUrl,
          token,
          ca,
          device: found.uuid,
          mappings,
          bind: opts.bind,
          onConnectionError: (listener, error) =>
            ctx.output.err(`error: ${describeListener(listener, label)}: ${error.message} (${error.code})\n`),
        });
        for (const listener of tunnel.listeners) ctx.output.out(`tunnel ${describeListener(listener, label)}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await tunnel.close();
      }),
    );
}
