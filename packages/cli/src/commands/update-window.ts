import type { Command } from 'commander';
import {
  USER_ROUTES,
  deviceRefSchema,
  formatDurationSeconds,
  parseDurationSeconds,
  slugSchema,
  type UpdateWindow,
} from '@flotilla/protocol';
import { emit } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

/** `0 2 * * * Europe/Paris, 2h`: a window as `fleet info` and `device info` show it. */
export function windowText(window: UpdateWindow | null): string | null {
  if (!window) return null;
  return `${window.cron} ${window.timezone}, ${formatDurationSeconds(window.durationSeconds)}`;
}

interface WindowOptions {
  cron: string;
  duration: string;
  tz: string;
  json?: boolean;
}

const windowOptions = (command: Command): Command =>
  command
    .requiredOption('--cron <expression>', 'when the window opens: 5 cron fields, or 6 with seconds first')
    .requiredOption('--duration <duration>', 'how long it stays open: 2h, 90m, 1h30m, 3600 (seconds)')
    .option('--tz <zone>', 'IANA time zone the cron expression is read in', 'UTC');

const bodyOf = (opts: WindowOptions): UpdateWindow => ({
  cron: opts.cron,
  durationSeconds: parseDurationSeconds(opts.duration),
  timezone: opts.tz,
});

/**
 * `flotilla fleet window set|clear`: maintenance windows. Devices download updates at once and apply them only
 * inside their window (their own, else their fleet's).
 */
export function registerFleetWindowCommands(fleet: Command): void {
  const fleetWindow = fleet
    .command('window')
    .description("the fleet's maintenance window: its devices apply updates only inside it");
  windowOptions(leaf(fleetWindow, 'set <fleet>', "set the fleet's maintenance window")).action(
    async (slug: string, opts: WindowOptions) =>
      runCommand(opts, async (ctx) => {
        const updated = await (await ctx.client()).call(USER_ROUTES.setFleetUpdateWindow, {
          params: { slug: checkArg(slugSchema, slug, 'fleet') },
          body: bodyOf(opts),
        });
        emit(ctx.output, updated, () => `${updated.slug}: update window ${windowText(updated.updateWindow)}\n`);
      }),
  );
  leaf(fleetWindow, 'clear <fleet>', "remove the fleet's maintenance window (updates apply at once)").action(
    async (slug: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        await (await ctx.client()).call(USER_ROUTES.clearFleetUpdateWindow, {
          params: { slug: checkArg(slugSchema, slug, 'fleet') },
        });
        emit(ctx.output, { cleared: slug }, () => `${slug}: no update window\n`);
      }),
  );
}

/** `flotilla device window set|clear`: a device's own window, in place of its fleet's. */
export function registerDeviceWindowCommands(device: Command): void {
  const deviceWindow = device
    .command('window')
    .description("the device's own maintenance window, in place of its fleet's");
  windowOptions(leaf(deviceWindow, 'set <device>', "set the device's own maintenance window")).action(
    async (ref: string, opts: WindowOptions) =>
      runCommand(opts, async (ctx) => {
        const updated = await (await ctx.client()).call(USER_ROUTES.setDeviceUpdateWindow, {
          params: { uuid: checkArg(deviceRefSchema, ref, 'device') },
          body: bodyOf(opts),
        });
        emit(ctx.output, updated, () => `${updated.name}: update window ${windowText(updated.updateWindow)}\n`);
      }),
  );
  leaf(deviceWindow, 'clear <device>', "remove the device's own window (its fleet's applies again)").action(
    async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        await (await ctx.client()).call(USER_ROUTES.clearDeviceUpdateWindow, {
          params: { uuid: checkArg(deviceRefSchema, ref, 'device') },
        });
        emit(ctx.output, { cleared: ref }, () => `${ref}: the fleet's update window applies\n`);
      }),
  );
}
