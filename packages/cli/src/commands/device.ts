import type { Command } from 'commander';
import {
  FlotillaError,
  USER_ROUTES,
  deviceRefSchema,
  isErrorCode,
  serviceNameSchema,
  slugSchema,
  formatBytes,
} from '@flotilla/protocol';
import type { Device, DeviceAction, RouteInput } from '@flotilla/protocol';
import { emit, formatDetails, formatTable } from '../output/output.js';
import { checkArg, leaf, releaseRef, runCommand } from './context.js';
import { registerDeviceOsUpdate } from './os-release.js';
import { registerPublicUrlCommands } from './public-url.js';
import { registerDeviceWindowCommands, windowText } from './update-window.js';

const DEVICE_PAGE = 1_000;

const deviceParams = (ref: string) => ({ uuid: checkArg(deviceRefSchema, ref, 'device') });

const downloadedOf = (bytes: { downloaded: number; pullBytes: number }) =>
  `${formatBytes(bytes.downloaded)} downloaded, a plain pull needs ${formatBytes(bytes.pullBytes)}`;

/** Delta updates' bytes; nothing from a server that does not count them, or before the device's first delta. */
export function updateBytesDetails(bytes: Device['updateBytes']): Array<[string, string]> {
  if (!bytes?.last) return [];
  const release = bytes.last.release === null ? '' : ` (release ${bytes.last.release.slice(0, 7)})`;
  return [
    ['last update', `${downloadedOf(bytes.last)}${release}`],
    ['all updates', downloadedOf(bytes.total)],
  ];
}

export function deviceDetails(d: Device): string {
  return (
    formatDetails([
      ['uuid', d.uuid],
      ['name', d.name],
      ['fleet', d.fleet],
      ['device type', d.deviceType],
      ['online', d.isOnline],
      ['last seen', d.lastSeenAt],
      ['status', d.status],
      ['running release', d.runningRelease],
      ['target release', d.targetRelease],
      ['pinned release', d.pinnedRelease],
      ...windowDetails(d),
      ['os', [d.osVersion, d.osVariant].filter(Boolean).join(' ')],
      ['target os', d.targetOs ?? null],
      ['os update', osUpdateText(d.osUpdate ?? null)],
      ['agent', d.agentVersion],
      ['ip address', d.ipAddress],
      ...updateBytesDetails(d.updateBytes),
    ]) +
    (Object.keys(d.services).length === 0
      ? ''
      : formatTable(
          ['service', 'status', 'release', 'image'],
          Object.entries(d.services).map(([name, s]) => [name, s.status, s.releaseCommit?.slice(0, 7), s.image]),
        )) +
    rollbackDetails(d.rollback ?? null)
  );
}

/** Its window (and whose it is), and while an update waits for it, when it opens. */
export function windowDetails(d: Device): Array<[string, string | null]> {
  const window = d.updateWindow ?? null;
  const rows: Array<[string, string | null]> = [
    [
      'update window',
      window ? `${windowText(window)} (${window.source === 'device' ? 'its own' : "the fleet's"})` : null,
    ],
  ];
  if (d.updateWindowOpensAt) rows.push(['update waits', `for the window, which opens ${d.updateWindowOpensAt}`]);
  return rows;
}

/** Where the host OS update stands, in one line; null (no row) on a host without A/B updates or with none yet. */
export function osUpdateText(u: Device['osUpdate']): string | null {
  if (u === null || (u.phase === 'idle' && u.version === null)) return null;
  const progress = u.progress === null ? '' : ` ${u.progress}%`;
  const why = u.error === null ? '' : `: ${u.error}${u.errorCode ? ` (${u.errorCode})` : ''}`;
  return `${u.version ?? '(no version)'} ${u.phase}${progress}${why}`;
}

/** The device went back by itself from a failing release: what, why, and the failing service's last lines. */
export function rollbackDetails(r: Device['rollback']): string {
  if (r === null) return '';
  const from = r.fromCommit.slice(0, 7);
  const lines = [
    '',
    `rolled back from ${from} to ${r.toCommit.slice(0, 7)} at ${r.at}${r.service ? ` (service ${r.service})` : ''}: ${r.reason}`,
    `refusing ${from} until a new release, a pin or a forced update (flotilla device update --force)`,
  ];
  if (r.logs.length > 0) lines.push(`last lines of ${r.service ?? 'the service'}:`, ...r.logs.map((l) => `  ${l}`));
  return `${lines.join('\n')}\n`;
}

export function registerDeviceCommands(program: Command): void {
  const device = program.command('device').description('inspect and manage devices');

  leaf(device, 'list', 'list devices')
    .option('--fleet <fleet>', 'only this fleet')
    .action(async (opts: { fleet?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const fleet = opts.fleet === undefined ? {} : { fleet: checkArg(slugSchema, opts.fleet, 'fleet') };
        const client = await ctx.client();
        // The server answers a page at a time (1,000 at most): every page, so the list is whole.
        const items: Device[] = [];
        for (;;) {
          const query = { ...fleet, limit: DEVICE_PAGE, offset: items.length };
          const page = await client.call(USER_ROUTES.listDevices, { query });
          items.push(...page.items);
          if (page.items.length < DEVICE_PAGE || items.length >= page.total) break;
        }
        emit(ctx.output, items, () =>
          formatTable(
            ['uuid', 'name', 'fleet', 'online', 'status', 'release'],
            items.map((d) => [
              d.uuid.slice(0, 7),
              d.name,
              d.fleet,
              d.isOnline ? 'yes' : 'no',
              d.status,
              d.runningRelease?.slice(0, 7),
            ]),
          ),
        );
      }),
    );

  leaf(device, 'info <device>', 'show a device (its name, UUID or a 7+ char UUID prefix)').action(
    async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const found = await (await ctx.client()).call(USER_ROUTES.getDevice, { params: deviceParams(ref) });
        emit(ctx.output, found, () => deviceDetails(found));
      }),
  );

  const patchDevice = (
    spec: string,
    description: string,
    body: (value: string) => RouteInput<typeof USER_ROUTES.updateDevice>['body'],
    done: (d: Device) => string,
  ) =>
    leaf(device, spec, description).action(async (ref: string, value: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const updated = await (await ctx.client()).call(USER_ROUTES.updateDevice, {
          params: deviceParams(ref),
          body: body(value),
        });
        emit(ctx.output, updated, () => done(updated));
      }),
    );
  patchDevice(
    'rename <device> <name>',
    'rename a device',
    (name) => ({ name }),
    (d) => `renamed ${d.uuid.slice(0, 7)} to ${d.name}\n`,
  );
  patchDevice(
    'move <device> <fleet>',
    'move a device to another fleet',
    (fleet) => ({ fleet: checkArg(slugSchema, fleet, 'fleet') }),
    (d) => `moved ${d.uuid.slice(0, 7)} to ${d.fleet}\n`,
  );
  patchDevice(
    'pin <device> <release>',
    'pin a device to a release (id or commit), or "none"',
    (r) => ({ pinnedRelease: releaseRef(r) }),
    (d) =>
      d.pinnedRelease
        ? `pinned ${d.uuid.slice(0, 7)} to ${d.pinnedRelease}\n`
        : `${d.uuid.slice(0, 7)} follows its fleet\n`,
  );

  registerDeviceOsUpdate(device);
  leaf(device, 'rm <device>', 'delete a device').action(async (ref: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      await (await ctx.client()).call(USER_ROUTES.deleteDevice, { params: deviceParams(ref) });
      emit(ctx.output, { deleted: ref }, () => `deleted device ${ref}\n`);
    }),
  );

  const actions: Array<[DeviceAction, string]> = [
    ['restart', 'restart the services of a device (or one with --service)'],
    ['reboot', 'reboot a device'],
    ['shutdown', 'shut a device down'],
    ['identify', 'blink the identification LED of a device'],
    ['purge', 'delete the app data (volumes) on a device and start its services afresh'],
    ['update', 'make a device fetch and apply its target state now'],
  ];
  for (const [action, description] of actions) {
    const cmd = leaf(device, `${action} <device>`, description).option(
      '--force',
      action === 'update' ? 'override update locks and, this once, the maintenance window' : 'override update locks',
    );
    if (action === 'restart') cmd.option('--service <name>', 'only this service');
    cmd.action(async (ref: string, opts: { force?: boolean; service?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const body: RouteInput<typeof USER_ROUTES.createDeviceAction>['body'] = {
          action: opts.service === undefined ? action : 'restart-service',
          ...(opts.service === undefined ? {} : { service: checkArg(serviceNameSchema, opts.service, 'service') }),
          ...(opts.force ? { force: true } : {}),
        };
        const result = await (await ctx.client()).call(USER_ROUTES.createDeviceAction, {
          params: deviceParams(ref),
          body,
        });
        // The server waits briefly for an online device's answer: a refusal (e.g. an update lock) is an error here.
        if (result.status === 'failed' && result.error) {
          throw new FlotillaError(
            isErrorCode(result.error.code) ? result.error.code : 'CONFLICT',
            `the device refused ${action}: ${result.error.message}`,
          );
        }
        const how =
          result.status === 'done'
            ? 'done'
            : result.status === 'pending'
              ? 'queued until the device is online'
              : result.status;
        emit(ctx.output, result, () => `${action} sent to ${ref}: ${how}\n`);
      }),
    );
  }

  registerPublicUrlCommands(device);
  registerDeviceWindowCommands(device);
}
