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
  type ClearTargetOsAnswer,
  type TargetOsAnswer,
} from '@flotilla/protocol';
import type { ApiClient } from '../api-client/api-client.js';
import { pushOsImage } from '../os-release/oci-push.js';
import { slotImageFrom } from '../os-release/slot-image.js';
import { emit, formatTable, progress } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';
import { rolloutOptions, rolloutPlanFromFlags, storedPlan, type RolloutFlags } from './rollout.js';

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

/** `flotilla os release push|list|rm` (under `flotilla os`). */
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
  leaf(release, 'rm <device-type> <version>', 'delete a host OS release no device or OS rollout targets')
    .option('--org <org>', 'the organization (handle or id); needed when you belong to several')
    .action(async (deviceTypeArg: string, versionArg: string, opts: { org?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const deviceType = checkArg(osDeviceTypeSchema, deviceTypeArg, 'device type');
        const version = checkArg(osVersionSchema, versionArg, 'version');
        const client = await ctx.client();
        const org = await organizationFor(client, opts.org);
        const { items } = await client.call(USER_ROUTES.listOsReleases, {
          query: { deviceType, organization: String(org.id) },
        });
        const found = items.find((r) => r.version === version);
        if (!found) throw new FlotillaError('OS_RELEASE_NOT_FOUND', `no OS ${version} for device type ${deviceType}`);
        await client.call(USER_ROUTES.deleteOsRelease, { params: { id: String(found.id) } });
        emit(
          ctx.output,
          { deleted: found.id, deviceType, version },
          () => `deleted OS ${version} for ${deviceType}; the registry's garbage collection frees its image\n`,
        );
      }),
    );
}

function told(answer: TargetOsAnswer): string {
  return `${answer.devices.length} device(s) of type ${answer.deviceType} told to run OS ${answer.version}${
    answer.devices.length > 0 ? `: ${answer.devices.map((u) => u.slice(0, 7)).join(', ')}` : ''
  }\n`;
}

function cleared(answer: ClearTargetOsAnswer): string {
  return `OS target cleared on ${answer.devices.length} device(s)${
    answer.devices.length > 0 ? `: ${answer.devices.map((u) => u.slice(0, 7)).join(', ')}` : ''
  }; an OS they installed stays\n`;
}

/** A version, or `--clear`: exactly one. */
function versionOrClear(version: string | undefined, clear: boolean | undefined): string | undefined {
  if (clear === true) {
    if (version !== undefined) throw new FlotillaError('VALIDATION_FAILED', 'give a version or --clear, not both');
    return undefined;
  }
  if (version === undefined) throw new FlotillaError('VALIDATION_FAILED', 'give the OS version (or --clear)');
  return checkArg(osVersionSchema, version, 'version');
}

/** `flotilla device os-update <device> <version>` and `flotilla device os-update <device> --clear`. */
export function registerDeviceOsUpdate(device: Command): void {
  leaf(device, 'os-update <device> [version]', 'install a host OS release on the device (A/B hosts)')
    .option('--clear', 'clear its OS target instead: nothing more is asked (an OS it installed stays)')
    .action(async (ref: string, version: string | undefined, opts: { clear?: boolean; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const wanted = versionOrClear(version, opts.clear);
        const params = { uuid: checkArg(deviceRefSchema, ref, 'device') };
        const client = await ctx.client();
        if (wanted === undefined) {
          const answer = await client.call(USER_ROUTES.clearDeviceOs, { params });
          emit(ctx.output, answer, () => cleared(answer));
          return;
        }
        const answer = await client.call(USER_ROUTES.setDeviceOs, { params, body: { version: wanted } });
        emit(ctx.output, answer, () => told(answer));
      }),
    );
}

/**
 * `flotilla fleet os-update <fleet> <version>` (every device at once), with `--rollout <batches>` or
 * `--rollout-policy <name>` (in batches, followed by `flotilla rollout status <fleet> --os`), or `--clear`.
 */
export function registerFleetOsUpdate(fleet: Command): void {
  rolloutOptions(
    leaf(fleet, 'os-update <fleet> [version]', "install a host OS release on every device of the fleet's device type"),
  )
    .option('--clear', "clear the fleet's devices' OS target instead, and abort its OS rollout")
    .action(
      async (slug: string, version: string | undefined, opts: { clear?: boolean; json?: boolean } & RolloutFlags) =>
        runCommand(opts, async (ctx) => {
          const { json: _json, clear, ...flags } = opts;
          const wanted = versionOrClear(version, clear);
          const params = { slug: checkArg(slugSchema, slug, 'fleet') };
          let plan = rolloutPlanFromFlags(flags);
          const staged = plan !== undefined || flags.rolloutPolicy !== undefined;
          const client = await ctx.client();
          if (wanted === undefined) {
            if (staged) throw new FlotillaError('VALIDATION_FAILED', '--clear takes no rollout option');
            const answer = await client.call(USER_ROUTES.clearFleetOs, { params });
            emit(ctx.output, answer, () => cleared(answer));
            return;
          }
          if (flags.rolloutPolicy !== undefined) plan = await storedPlan(client, params.slug, flags.rolloutPolicy);
          if (plan !== undefined) {
            const r = await client.call(USER_ROUTES.createOsRollout, { params, body: { version: wanted, ...plan } });
            emit(
              ctx.output,
              r,
              () =>
                `OS ${r.os.version} staged on ${r.fleet}: ${r.batches.map((b) => `${b.label} (${b.devices})`).join(', ')}; ` +
                `batch 1 told. Follow it with \`flotilla rollout status ${r.fleet} --os\`\n`,
            );
            return;
          }
          const answer = await client.call(USER_ROUTES.setFleetOs, { params, body: { version: wanted } });
          emit(ctx.output, answer, () => told(answer));
        }),
    );
}
