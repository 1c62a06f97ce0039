import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import Docker from 'dockerode';
import pLimit from 'p-limit';
import { FlotillaError, USER_ROUTES, slugSchema } from '@flotilla/protocol';
import type { Platform, Rollout, RolloutPlan } from '@flotilla/protocol';
import type { ApiClient } from '../api-client/api-client.js';
import { buildService, ensureImage, pushImage, tagImage } from '../images/images.js';
import { checkImagePlatform, platformFlag, targetPlatform } from '../images/platform.js';
import type { ImageSource } from '../images/platform.js';
import { loadProject } from '../compose/load-project.js';
import { emit, progress } from '../output/output.js';
import type { Output } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';
import { rolloutOptions, rolloutPlanFromFlags, storedPlan, type RolloutFlags } from './rollout.js';

export interface DeployResult {
  release: { id: number; version: string; commit: string; status: string };
  images: Record<string, string>;
  /** With a rollout plan: the rollout as it stands once the release succeeded. */
  rollout?: Rollout;
}

/** `<registry host>/<fleet>/<service>`: repository names must be lowercase. */
export function imageRepository(registryHost: string, fleet: string, service: string): string {
  return `${registryHost}/${fleet}/${service.toLowerCase()}`;
}

/** Services built and pushed at once: the engine builds in parallel, and a laptop has a few cores. */
const CONCURRENT_BUILDS = 3;

export interface DeployOptions {
  /** `--platform`, already validated: overrides the platform of the fleet's device type. */
  platform?: Platform | undefined;
  /**
   * Stage the release: created with the release, before any image is pushed, so that when the release succeeds it
   * goes to the fleet's batches in turn instead of every device at once.
   */
  rollout?: RolloutPlan | undefined;
}

/**
 * Build every service (a few at a time) for the fleet's platform, check it, push it, then mark the release
 * successful with digest-pinned images.
 * INVARIANT: the release is marked success only after every image is pushed; any failure after it was created
 * marks it failed, so devices never receive a half-deployed release.
 * INVARIANT: no image is pushed unless the engine reports a platform the devices can run.
 */
export async function deploy(
  client: ApiClient,
  token: string,
  slug: string,
  dir: string,
  output: Output,
  options: DeployOptions = {},
  docker = new Docker(),
): Promise<DeployResult> {
  const project = await loadProject(dir);
  const fleet = await client.call(USER_ROUTES.getFleet, { params: { slug } });
  // Before the release exists: an unknown device type leaves nothing behind to mark failed.
  const target = targetPlatform(fleet, options.platform);
  const registryHost = new URL(client.baseUrl).host;
  const commit = randomBytes(16).toString('hex');
  const release = await client.call(USER_ROUTES.createRelease, {
    params: { slug: fleet.slug },
    body: { commit, composition: project.composition, status: 'running' },
  });
  progress(
    output,
    `release ${release.version} (${release.commit}) created for ${fleet.slug}; building ${project.services.length} service(s) for ${target.name}`,
  );
  try {
    if (options.rollout) {
      const rollout = await client.call(USER_ROUTES.createRollout, {
        params: { slug: fleet.slug },
        body: { release: release.id, ...options.rollout },
      });
      progress(output, `rollout staged: ${rollout.batches.map((b) => `${b.label} (${b.devices})`).join(', ')}`);
    }
    const auth = { username: 'flotilla', password: token, serveraddress: registryHost };
    const limit = pLimit(CONCURRENT_BUILDS);
    // Every service runs to its end even when another fails, so the release is marked failed only once nothing is
    // still pushing for it.
    const outcomes = await Promise.allSettled(
      project.services.map((service) =>
        limit(async (): Promise<[string, string]> => {
          const repository = imageRepository(registryHost, fleet.slug, service.name);
          const ref = `${repository}:${release.commit}`;
          const log = (line: string) => progress(output, `[${service.name}] ${line}`);
          let source: ImageSource;
          if (service.image !== undefined) {
            log(`using image ${service.image}`);
            await ensureImage(docker, service.image, auth, target, log);
            await tagImage(docker, service.image, ref);
            source = { kind: 'image', image: service.image };
          } else {
            log('building');
            source = { kind: 'build', ...(await buildService(docker, service, ref, target, log)) };
          }
          await checkImagePlatform(docker, service.name, ref, target, source);
          log(`pushing ${ref}`);
          const digest = await pushImage(docker, ref, auth, log);
          log(`pushed ${digest}`);
          return [service.name, `${repository}@${digest}`];
        }),
      ),
    );
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) throw failed.reason;
    const images = Object.fromEntries(outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : [])));
    const done = await client.call(USER_ROUTES.updateRelease, {
      params: { ref: release.id },
      body: { status: 'success', images },
    });
    const result: DeployResult = {
      release: { id: done.id, version: done.version, commit: done.commit, status: done.status },
      images,
    };
    if (options.rollout) result.rollout = await client.call(USER_ROUTES.getRollout, { params: { slug: fleet.slug } });
    return result;
  } catch (error) {
    await client
      .call(USER_ROUTES.updateRelease, { params: { ref: release.id }, body: { status: 'failed' } })
      .catch((patchError: unknown) => {
        progress(
          output,
          `could not mark release ${release.id} failed: ${patchError instanceof Error ? patchError.message : String(patchError)}`,
        );
      });
    if (error instanceof FlotillaError) throw error;
    throw new FlotillaError('BUILD_FAILED', error instanceof Error ? error.message : String(error), { cause: error });
  }
}

export function registerDeployCommand(program: Command): void {
  rolloutOptions(
    leaf(
      program,
      'deploy <fleet> [dir]',
      'build a compose project (or Dockerfile) locally, push it and create a release',
    ),
  )
    .option(
      '--platform <os/arch[/variant]>',
      "build for this platform (e.g. linux/arm64, linux/arm/v7) instead of the one of the fleet's device type",
    )
    .action(async (slug: string, dir: string | undefined, opts: { json?: boolean; platform?: string } & RolloutFlags) =>
      runCommand(opts, async (ctx) => {
        const platform = platformFlag(opts.platform);
        const flags: RolloutFlags = {
          rollout: opts.rollout,
          rolloutPolicy: opts.rolloutPolicy,
          rolloutTag: opts.rolloutTag,
          soak: opts.soak,
          offlineTimeout: opts.offlineTimeout,
          successThreshold: opts.successThreshold,
          failureThreshold: opts.failureThreshold,
        };
        let rollout = rolloutPlanFromFlags(flags);
        const { token } = await ctx.credentials();
        const fleetSlug = checkArg(slugSchema, slug, 'fleet');
        if (opts.rolloutPolicy !== undefined)
          rollout = await storedPlan(await ctx.client(), fleetSlug, opts.rolloutPolicy);
        const result = await deploy(await ctx.client(), token, fleetSlug, dir ?? '.', ctx.output, {
          platform,
          rollout,
        });
        emit(
          ctx.output,
          result,
          () =>
            `deployed release ${result.release.version} (commit ${result.release.commit}) to ${slug}\n${
              result.rollout
                ? `staged in ${result.rollout.batches.length} batch(es); follow it with \`flotilla rollout status ${slug}\`\n`
                : ''
            }`,
        );
      }),
    );
}
