import type { Command } from 'commander';
import { USER_ROUTES, slugSchema } from '@flotilla/protocol';
import type { Fleet } from '@flotilla/protocol';

const fleetParams = (slug: string) => ({ slug: checkArg(slugSchema, slug, 'fleet') });
import { emit, formatDetails, formatTable } from '../output/output.js';
import { checkArg, leaf, releaseRef, runCommand } from './context.js';
import { registerFleetOsUpdate } from './os-release.js';
import { registerFleetWindowCommands, windowText } from './update-window.js';

export function fleetDetails(fleet: Fleet): string {
  return formatDetails([
    ['slug', fleet.slug],
    ['name', fleet.name],
    ['organization', fleet.organization],
    ['device type', fleet.deviceType],
    [
      'target release',
      fleet.targetRelease ? `${fleet.targetRelease.version} (${fleet.targetRelease.commit.slice(0, 7)})` : null,
    ],
    ['pinned release', fleet.pinnedRelease],
    ['update window', windowText(fleet.updateWindow ?? null)],
    ['target OS', fleet.targetOs ? `${fleet.targetOs.version} (${fleet.targetOs.deviceType})` : null],
    [
      'devices',
      fleet.deviceCount === undefined ? null : `${fleet.deviceCount} (${fleet.onlineDeviceCount ?? 0} online)`,
    ],
    ['created', fleet.createdAt],
  ]);
}

export function registerFleetCommands(program: Command): void {
  const fleet = program.command('fleet').description('create and manage fleets');

  leaf(fleet, 'create <name>', 'create a fleet')
    .option('--slug <slug>', 'URL-safe identifier (default: derived from the name)')
    .option('--device-type <type>', 'device type', 'generic-amd64')
    .option('--org <handle>', 'organization (default: your first)')
    .action(async (name: string, opts: { slug?: string; deviceType: string; org?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const body = {
          name,
          deviceType: opts.deviceType,
          ...(opts.slug === undefined ? {} : { slug: checkArg(slugSchema, opts.slug, 'slug') }),
          ...(opts.org === undefined ? {} : { organization: opts.org }),
        };
        const created = await (await ctx.client()).call(USER_ROUTES.createFleet, { body });
        emit(ctx.output, created, () => `created fleet ${created.slug}\n`);
      }),
    );

  leaf(fleet, 'list', 'list your fleets').action(async (opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const { items } = await (await ctx.client()).call(USER_ROUTES.listFleets);
      emit(ctx.output, items, () =>
        formatTable(
          ['slug', 'name', 'organization', 'device type', 'devices', 'release'],
          items.map((f) => [f.slug, f.name, f.organization, f.deviceType, f.deviceCount, f.targetRelease?.version]),
        ),
      );
    }),
  );

  leaf(fleet, 'info <fleet>', 'show a fleet').action(async (slug: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const found = await (await ctx.client()).call(USER_ROUTES.getFleet, { params: fleetParams(slug) });
      emit(ctx.output, found, () => fleetDetails(found));
    }),
  );

  registerFleetOsUpdate(fleet);
  leaf(fleet, 'rm <fleet>', 'delete a fleet').action(async (slug: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      await (await ctx.client()).call(USER_ROUTES.deleteFleet, { params: fleetParams(slug) });
      emit(ctx.output, { deleted: slug }, () => `deleted fleet ${slug}\n`);
    }),
  );

  leaf(
    fleet,
    'pin <fleet> <release>',
    'pin the fleet to a release (id or commit), or "none" to follow the latest',
  ).action(async (slug: string, release: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const updated = await (await ctx.client()).call(USER_ROUTES.updateFleet, {
        params: fleetParams(slug),
        body: { pinnedRelease: releaseRef(release) },
      });
      emit(ctx.output, updated, () =>
        updated.pinnedRelease
          ? `pinned ${updated.slug} to ${updated.pinnedRelease}\n`
          : `${updated.slug} follows the latest release\n`,
      );
    }),
  );
  registerFleetWindowCommands(fleet);
}
