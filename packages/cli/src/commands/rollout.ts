import type { Command } from 'commander';
import {
  FlotillaError,
  USER_ROUTES,
  parseRolloutBatches,
  parseRolloutTag,
  rolloutPlanSchema,
  rolloutPolicyNameSchema,
  slugSchema,
  type OsRollout,
  type Rollout,
  type RolloutPlan,
} from '@flotilla/protocol';
import type { ApiClient } from '../api-client/api-client.js';
import { emit, formatDetails, formatTable } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

/** The rollout options `deploy` takes, as commander hands them over (strings). */
export interface RolloutFlags {
  rollout?: string;
  rolloutPolicy?: string;
  rolloutTag?: string;
  soak?: string;
  offlineTimeout?: string;
  successThreshold?: string;
  failureThreshold?: string;
}

const number = (value: string | undefined, what: string): number | undefined => {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new FlotillaError('VALIDATION_FAILED', `invalid ${what} ${JSON.stringify(value)}: give a number`);
  return n;
};

/** The plan `--rollout` and its companions describe; undefined without `--rollout`. Validated before any build. */
export function rolloutPlanFromFlags(flags: RolloutFlags): RolloutPlan | undefined {
  if (flags.rolloutPolicy !== undefined) {
    if (Object.entries(flags).some(([k, v]) => k !== 'rolloutPolicy' && v !== undefined))
      throw new FlotillaError('VALIDATION_FAILED', '--rollout-policy takes no other rollout option');
    return undefined;
  }
  if (flags.rollout === undefined) {
    const stray = ['rolloutTag', 'soak', 'offlineTimeout', 'successThreshold', 'failureThreshold'].find(
      (k) => flags[k as keyof RolloutFlags] !== undefined,
    );
    if (stray) throw new FlotillaError('VALIDATION_FAILED', 'the rollout options need --rollout "<batches>"');
    return undefined;
  }
  const plan = {
    batches: parseRolloutBatches(flags.rollout),
    ...(flags.rolloutTag === undefined ? {} : { tag: parseRolloutTag(flags.rolloutTag) }),
    soakSeconds: number(flags.soak, '--soak'),
    offlineTimeoutSeconds: number(flags.offlineTimeout, '--offline-timeout'),
    successThreshold: number(flags.successThreshold, '--success-threshold'),
    failureThreshold: number(flags.failureThreshold, '--failure-threshold'),
  };
  const defined = Object.fromEntries(Object.entries(plan).filter(([, v]) => v !== undefined));
  return checkArg(rolloutPlanSchema, defined, 'rollout');
}

/** The plan stored on the fleet under `name`; ROLLOUT_POLICY_NOT_FOUND when there is none. */
export async function storedPlan(client: ApiClient, slug: string, name: string): Promise<RolloutPlan> {
  const { items } = await client.call(USER_ROUTES.listRolloutPolicies, { params: { slug } });
  const policy = items.find((p) => p.name === name);
  if (!policy) throw new FlotillaError('ROLLOUT_POLICY_NOT_FOUND', `the fleet has no rollout policy "${name}"`);
  return policy.plan;
}

/** Adds the rollout options to a command (deploy). */
export function rolloutOptions(command: Command): Command {
  return command
    .option('--rollout-policy <name>', 'stage the release with the rollout plan stored on the fleet under this name')
    .option('--rollout <batches>', 'stage the release: cumulative percentages of the fleet, e.g. "5%,25%,100%"')
    .option('--rollout-tag <key=value>', 'with --rollout: the devices with this tag form the first batch')
    .option('--soak <seconds>', 'with --rollout: how long a device runs the release healthy to succeed (default 300)')
    .option('--offline-timeout <seconds>', 'with --rollout: how long an offline device holds its batch (default 1800)')
    .option('--success-threshold <percent>', 'with --rollout: share of a batch that must succeed (default 100)')
    .option('--failure-threshold <percent>', 'with --rollout: share of a batch whose failure pauses (default 10)');
}

export function rolloutDetails(r: Rollout): string {
  const release = (x: { version: string; commit: string } | null) =>
    x ? `${x.version} (${x.commit.slice(0, 7)})` : null;
  return (
    formatDetails([
      ['fleet', r.fleet],
      ['release', release(r.release)],
      ['previous release', release(r.previousRelease)],
      ['status', r.waiting ? 'running (waiting for the release to succeed)' : r.status],
      ['reason', r.reason],
      ['batch', `${r.currentBatch + 1} of ${r.batches.length}`],
      ['soak', `${r.plan.soakSeconds} s`],
      ['thresholds', `success ${r.plan.successThreshold}%, failure ${r.plan.failureThreshold}%`],
    ]) + rolloutTables(r)
  );
}

/** A staged OS update: the OS release in place of the release, the same batches. */
export function osRolloutDetails(r: OsRollout): string {
  return (
    formatDetails([
      ['fleet', r.fleet],
      ['os', `${r.os.version} (${r.os.deviceType})`],
      ['status', r.status],
      ['reason', r.reason],
      ['batch', `${r.currentBatch + 1} of ${r.batches.length}`],
      ['soak', `${r.plan.soakSeconds} s`],
      ['thresholds', `success ${r.plan.successThreshold}%, failure ${r.plan.failureThreshold}%`],
    ]) + rolloutTables(r)
  );
}

/** The batches' figures, then the devices that failed or went offline (with why). */
function rolloutTables(r: Pick<Rollout, 'batches' | 'devices'>): string {
  return (
    formatTable(
      ['batch', 'devices', 'opened', 'succeeded', 'pending', 'failed', 'offline', 'excused'],
      r.batches.map((b) => [
        `${b.index + 1} (${b.label})`,
        b.devices,
        b.opened ? (b.openedAt ?? 'yes') : 'no',
        b.succeeded,
        b.pending,
        b.failed,
        b.offline,
        b.excused,
      ]),
    ) +
    formatTable(
      ['device', 'batch', 'state', 'reason'],
      r.devices
        .filter((d) => d.state === 'failed' || d.state === 'offline')
        .map((d) => [d.name, d.batch + 1, d.state, d.reason]),
    ).replace(/^nothing to show\n$/, '')
  );
}

export function registerRolloutCommands(program: Command): void {
  const rollout = program
    .command('rollout')
    .description('follow and steer the staged rollout of a fleet (start one with `flotilla deploy --rollout`)');
  const params = (slug: string) => ({ slug: checkArg(slugSchema, slug, 'fleet') });

  const osOption = '--os';
  const osHelp = "the fleet's OS rollout (`flotilla fleet os-update --rollout`) instead of its release rollout";
  leaf(rollout, 'status <fleet>', "show the fleet's latest rollout: batches, failures, events")
    .option(osOption, osHelp)
    .action(async (slug: string, opts: { json?: boolean; os?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const client = await ctx.client();
        if (opts.os) {
          const r = await client.call(USER_ROUTES.getOsRollout, { params: params(slug) });
          emit(ctx.output, r, () => osRolloutDetails(r));
          return;
        }
        const r = await client.call(USER_ROUTES.getRollout, { params: params(slug) });
        emit(ctx.output, r, () => rolloutDetails(r));
      }),
    );

  const policy = rollout.command('policy').description("the fleet's named rollout plans (deploy --rollout-policy)");
  leaf(policy, 'list <fleet>', "list the fleet's rollout policies").action(
    async (slug: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const { items } = await (await ctx.client()).call(USER_ROUTES.listRolloutPolicies, { params: params(slug) });
        emit(ctx.output, items, () =>
          formatTable(
            ['name', 'batches', 'tag', 'soak', 'offline timeout', 'success', 'failure'],
            items.map((p) => [
              p.name,
              p.plan.batches.map((b) => `${b}%`).join(','),
              p.plan.tag ? `${p.plan.tag.key}=${p.plan.tag.value}` : null,
              `${p.plan.soakSeconds} s`,
              `${p.plan.offlineTimeoutSeconds} s`,
              `${p.plan.successThreshold}%`,
              `${p.plan.failureThreshold}%`,
            ]),
          ),
        );
      }),
  );
  rolloutOptions(leaf(policy, 'set <fleet> <name>', 'store a rollout plan on the fleet under a name')).action(
    async (slug: string, name: string, opts: { json?: boolean } & RolloutFlags) =>
      runCommand(opts, async (ctx) => {
        const { json: _json, ...flags } = opts;
        if (flags.rollout === undefined || flags.rolloutPolicy !== undefined)
          throw new FlotillaError('VALIDATION_FAILED', 'give the plan with --rollout "<batches>" (and its options)');
        const plan = rolloutPlanFromFlags(flags);
        const stored = await (await ctx.client()).call(USER_ROUTES.putRolloutPolicy, {
          params: { ...params(slug), name: checkArg(rolloutPolicyNameSchema, name, 'policy name') },
          body: plan ?? { batches: [] },
        });
        emit(ctx.output, stored, () => `stored rollout policy ${stored.name} on ${slug}\n`);
      }),
  );
  leaf(policy, 'rm <fleet> <name>', 'delete a rollout policy').action(
    async (slug: string, name: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        await (await ctx.client()).call(USER_ROUTES.deleteRolloutPolicy, {
          params: { ...params(slug), name: checkArg(rolloutPolicyNameSchema, name, 'policy name') },
        });
        emit(ctx.output, { deleted: name }, () => `deleted rollout policy ${name}\n`);
      }),
  );

  const actions = [
    [
      'pause',
      USER_ROUTES.pauseRollout,
      USER_ROUTES.pauseOsRollout,
      'pause the running rollout: no further batch opens',
    ],
    [
      'resume',
      USER_ROUTES.resumeRollout,
      USER_ROUTES.resumeOsRollout,
      'resume a paused rollout; the failures that paused it no longer count',
    ],
    [
      'abort',
      USER_ROUTES.abortRollout,
      USER_ROUTES.abortOsRollout,
      'abort the rollout: every device goes back to the previous release (--os: devices that have not installed the OS are no longer asked to)',
    ],
  ] as const;
  for (const [name, route, osRoute, description] of actions)
    leaf(rollout, `${name} <fleet>`, description)
      .option(osOption, osHelp)
      .action(async (slug: string, opts: { json?: boolean; os?: boolean }) =>
        runCommand(opts, async (ctx) => {
          const client = await ctx.client();
          if (opts.os) {
            const r = await client.call(osRoute, { params: params(slug) });
            emit(ctx.output, r, () => `OS rollout of ${r.os.version} on ${r.fleet}: ${r.status}\n`);
            return;
          }
          const r = await client.call(route, { params: params(slug) });
          emit(ctx.output, r, () => `rollout of ${r.release.version} on ${r.fleet}: ${r.status}\n`);
        }),
      );
}
