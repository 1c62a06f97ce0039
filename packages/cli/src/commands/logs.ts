import type { Command } from 'commander';
import pc from 'picocolors';
import { USER_ROUTES, deviceRefSchema, logEntrySchema, serviceNameSchema, type LogEntry } from '@flotilla/protocol';
import { z } from 'zod';
import { checkArg, leaf, runCommand } from './context.js';

const PALETTE = [pc.cyan, pc.magenta, pc.green, pc.yellow, pc.blue] as const;

/** A stable colour per service name, so the same service looks the same in every run. */
function colourOf(service: string): (text: string) => string {
  let hash = 0;
  for (const ch of service) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[hash % PALETTE.length]!;
}

export function formatLogEntry(entry: LogEntry, colour: boolean): string {
  const time = new Date(entry.timestamp)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '');
  const source = entry.isSystem ? 'system' : (entry.serviceName ?? 'unknown');
  const paint = colour ? (entry.isSystem ? pc.bold : colourOf(source)) : (text: string) => text;
  const message = colour && entry.isStdErr ? pc.red(entry.message) : entry.message;
  return `${colour ? pc.dim(time) : time} ${paint(`[${source}]`)} ${message}`;
}

export function registerLogsCommand(program: Command): void {
  leaf(program, 'logs <device>', 'print a device’s logs (newest last); --follow keeps printing new lines')
    .option('-s, --service <name>', 'only this service’s lines')
    .option('-f, --follow', 'keep the stream open and print lines as they arrive')
    .option('-t, --tail <lines>', 'how many recent lines to print first', '100')
    .option('--no-color', 'plain output')
    .action(
      async (
        device: string,
        options: { json?: boolean; service?: string; follow?: boolean; tail: string; color: boolean },
      ) =>
        runCommand(options, async (ctx) => {
          const ref = checkArg(deviceRefSchema, device, 'device');
          const service =
            options.service === undefined ? undefined : checkArg(serviceNameSchema, options.service, 'service');
          const tail = checkArg(z.coerce.number().int().min(0).max(100_000), options.tail, '--tail');
          const client = await ctx.client();
          const colour = options.color && !ctx.output.json && process.stdout.isTTY === true;
          const print = (entry: LogEntry) =>
            ctx.output.out(`${ctx.output.json ? JSON.stringify(entry) : formatLogEntry(entry, colour)}\n`);
          const input = { params: { uuid: ref }, query: { tail, service } };
          if (!options.follow) {
            const { items } = await client.call(USER_ROUTES.deviceLogs, input);
            for (const entry of items) print(entry);
            return;
          }
          const abort = new AbortController();
          const stop = () => abort.abort();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          try {
            const following = { ...input, query: { ...input.query, follow: '1' as const } };
            for await (const entry of client.events(
              USER_ROUTES.deviceLogs,
              following,
              'log',
              logEntrySchema,
              abort.signal,
            ))
              print(entry);
          } finally {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
          }
        }),
    );
}
