import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  FlotillaError,
  USER_ROUTES,
  deviceRefSchema,
  formatBytes,
  osDeviceTypeSchema,
  osRepository,
  osVersionSchema,
  slugSchema,
  type TargetOsAnswer,
} from '@flotilla/protocol';
import type { ApiClient } from '../api-client/api-client.js';
import { pushOsImage } from '../os-release/oci-push.js';
import { slotImageFrom } from '../os-release/slot-image.js';
import { emit, formatTable, progress } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

/** The organization an OS release goes to: `--org` (handle or id), else the caller's only one. */
async function organizationFor(client: ApiClient, ref: string | undefined): Promise<{ id: number; handle: string }> {
  const { items } = await client.call(USER_ROUTES.listOrganizations, {});
  if (ref !== undefined) {
    const found = items.find((o) => o.handle === ref || String(o.id) === ref);
    if (!found) throw new FlotillaError('ORGANIZATION_NOT_FOUND', `no organization "${ref}"`);
    return found;
  }
  const [only, ...others] = items;
  if (!only || others.length > 0)
    throw new FlotillaError(
      'VALIDATION_FAILED',
      `you belong to ${items.length} organizations; name one with --org (${items.map((o) => o.handle).join(', ')})`,
    );
  return only;
}

/** `flotilla os release push|list` (under `flotilla os`). */
export function registerOsReleaseCommands(os: Command): void {
  const release = os.command('release').description('host OS releases (A/B updates) of your organization');
  leaf(
    release,
    'push <device-type> <version> <file>',
    'push a host OS release: a raw ext4 slot image or a rootfs tarball',
  )
    .option('--org <org>', 'the organization (handle or id); needed when you belong to several')
    .action(async (deviceTypeArg: string, versionArg: string, file: string, opts: { org?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const deviceType = checkArg(osDeviceTypeSchema, deviceTypeArg, 'device type');
        const version = checkArg(osVersionSchema, versionArg, 'version');
        const client = await ctx.client();
        const { token, ca } = await ctx.credentials();
        const org = await organizationFor(client, opts.org);
        // Before uploading what may be gigabytes: the server would refuse the version at the end anyway.
        const existing = await client.call(USER_ROUTES.listOsReleases, {
          query: { deviceType, organization: String(org.id) },
        });
        if (existing.items.some((r) => r.version === version))
          throw new FlotillaError('OS_RELEASE_EXISTS', `${deviceType} already has OS ${version}; give another version`);
        const work = await mkdtemp(join(tmpdir(), 'flotilla-os-'));
        try {
          const image = await slotImageFrom(file, work);
          if (image.madeFrom) progress(ctx.output, `made an ext4 slot image of ${image.size} bytes from ${file}`);
          const manifestDigest = await pushOsImage({
            baseUrl: client.baseUrl,
            token,
            ca,
            repository: osRepository(org.id, deviceType),
            deviceType,
            version,
            image,
            progress: (line) => progress(ctx.output, line),
          });
          const created = await client.call(USER_ROUTES.createOsRelease, {
            params: { org: String(org.id) },
            body: { deviceType, version, manifestDigest },
          });
          emit(
            ctx.output,
            created,
            () =>
              `OS ${created.version} for ${created.deviceType} pushed: ${formatBytes(created.size)}, ${created.image}\n`,
          );
        } finally {
          await rm(work, { recursive: true, force: true });
        }
      }),
    );
  leaf(release, 'list [device-type]', "your organizations' host OS releases, newest first")
    .option('--org <org>', 'only this organization (handle or id)')
    .action(async (deviceType: string | undefined, opts: { org?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const query = {
          ...(deviceType === undefined ? {} : { deviceType: checkArg(osDeviceTypeSchema, deviceType, 'device type') }),
          ...(opts.org === undefined ? {} : { organization: opts.org }),
        };
        const { items } = await (await ctx.client()).call(USER_ROUTES.listOsReleases, { query });
        emit(ctx.output, items, () =>
          formatTable(
            ['id', 'device type', 'version', 'size', 'sha256', 'org', 'by', 'created'],
            items.map((r) => [
              r.id,
              r.deviceType,
              r.version,
              formatBytes(r.size),
              r.sha256.slice(0, 12),
              r.organization,
              r.createdBy,
              r.createdAt,
            ]),
          ),
        );
      }),
    );
}

function told(answer: TargetOsAnswer): string {
  return `${answer.devices.length} device(s) of type ${answer.deviceType} told to run OS ${answer.version}${
    answer.devices.length > 0 ? `: ${answer.devices.map((u) => u.slice(0, 7)).join(', ')}` : ''
  }\n`;
}

/** `flotilla device os-update <device> <version>`. */
export function registerDeviceOsUpdate(device: Command): void {
  leaf(device, 'os-update <device> <version>', 'install a host OS release on the device (A/B hosts)').action(
    async (ref: string, version: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const answer = await (await ctx.client()).call(USER_ROUTES.setDeviceOs, {
          params: { uuid: checkArg(deviceRefSchema, ref, 'device') },
          body: { version: checkArg(osVersionSchema, version, 'version') },
        });
        emit(ctx.output, answer, () => told(answer));
      }),
  );
}

/** `flotilla fleet os-update <fleet> <version>`. */
export function registerFleetOsUpdate(fleet: Command): void {
  leaf(
    fleet,
    'os-update <fleet> <version>',
    "install a host OS release on every device of the fleet's device type",
  ).action(async (slug: string, version: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const answer = await (await ctx.client()).call(USER_ROUTES.setFleetOs, {
        params: { slug: checkArg(slugSchema, slug, 'fleet') },
        body: { version: checkArg(osVersionSchema, version, 'version') },
      });
      emit(ctx.output, answer, () => told(answer));
    }),
  );
}
