import type { Command } from 'commander';
import { deviceRefSchema, envNameSchema, FlotillaError, path, serviceNameSchema, slugSchema } from '@flotilla/protocol';
import type { EnvVar } from '@flotilla/protocol';
import { emit, formatTable } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

interface ScopeOptions {
  fleet?: string;
  device?: string;
  service?: string;
  json?: boolean;
}

/** `--fleet <slug>` or `--device <uuid>`, exactly one: the owner of the variables. */
export function ownerPath(opts: ScopeOptions): string {
  if ((opts.fleet === undefined) === (opts.device === undefined))
    throw new FlotillaError('VALIDATION_FAILED', 'give exactly one of --fleet or --device');
  return opts.fleet !== undefined
    ? path('/fleets/:slug', { slug: checkArg(slugSchema, opts.fleet, 'fleet') })
    : path('/devices/:uuid', { uuid: checkArg(deviceRefSchema, opts.device, 'device') });
}

function scoped(cmd: Command): Command {
  return cmd.option('--fleet <fleet>', 'fleet scope').option('--device <device>', 'device scope');
}

/** `env` and `config` share their shape: name/value pairs on a fleet or a device; env may name a service. */
function registerVariableKind(program: Command, kind: 'env' | 'config'): void {
  const group = program
    .command(kind)
    .description(
      kind === 'env'
        ? 'environment variables of fleets and devices'
        : 'configuration variables (FLOTILLA_/BALENA_ prefixed) of fleets and devices',
    );
  const add = scoped(
    leaf(group, 'add <name> <value>', kind === 'env' ? 'set an environment variable' : 'set a configuration variable'),
  );
  if (kind === 'env') add.option('--service <service>', 'only for this service');
  add.action(async (name: string, value: string, opts: ScopeOptions) =>
    runCommand(opts, async (ctx) => {
      const body: Record<string, string> = {
        name: kind === 'env' ? checkArg(envNameSchema, name, 'name') : name,
        value,
      };
      if (opts.service !== undefined) body.service = checkArg(serviceNameSchema, opts.service, 'service');
      const saved = await (await ctx.client()).post<EnvVar>(`${ownerPath(opts)}/${kind}`, body);
      emit(ctx.output, saved, () => `set ${saved.name}${saved.service ? ` for ${saved.service}` : ''}\n`);
    }),
  );

  scoped(leaf(group, 'list', `list ${kind} variables`)).action(async (opts: ScopeOptions) =>
    runCommand(opts, async (ctx) => {
      const { items } = await (await ctx.client()).get<{ items: EnvVar[] }>(`${ownerPath(opts)}/${kind}`);
      emit(ctx.output, items, () =>
        kind === 'env'
          ? formatTable(
              ['id', 'name', 'value', 'service'],
              items.map((v) => [v.id, v.name, v.value, v.service]),
            )
          : formatTable(
              ['id', 'name', 'value'],
              items.map((v) => [v.id, v.name, v.value]),
            ),
      );
    }),
  );

  const rm = scoped(leaf(group, 'rm <name>', `remove a ${kind} variable`));
  if (kind === 'env') rm.option('--service <service>', 'only the one for this service');
  rm.action(async (name: string, opts: ScopeOptions) =>
    runCommand(opts, async (ctx) => {
      await (await ctx.client()).delete(`${ownerPath(opts)}/${kind}/${encodeURIComponent(name)}`, {
        service: opts.service,
      });
      emit(ctx.output, { deleted: name }, () => `removed ${name}\n`);
    }),
  );
}

export function registerVariableCommands(program: Command): void {
  registerVariableKind(program, 'env');
  registerVariableKind(program, 'config');

  const tag = program.command('tag').description('tags of devices');
  leaf(tag, 'add <key> <value>', 'set a tag on a device')
    .requiredOption('--device <device>', 'device')
    .action(async (key: string, value: string, opts: ScopeOptions) =>
      runCommand(opts, async (ctx) => {
        const saved = await (await ctx.client()).post<{ key: string; value: string }>(
          `${ownerPath({ device: opts.device })}/tags`,
          { key, value },
        );
        emit(ctx.output, saved, () => `tagged ${opts.device} ${key}=${value}\n`);
      }),
    );
  scoped(leaf(tag, 'list', 'list the tags of a device, or of every device of a fleet')).action(
    async (opts: ScopeOptions) =>
      runCommand(opts, async (ctx) => {
        const { items } = await (await ctx.client()).get<{
          items: Array<{ key: string; value: string; device?: string }>;
        }>(`${ownerPath(opts)}/tags`);
        emit(ctx.output, items, () =>
          formatTable(
            opts.fleet ? ['device', 'key', 'value'] : ['key', 'value'],
            items.map((t) => (opts.fleet ? [t.device, t.key, t.value] : [t.key, t.value])),
          ),
        );
      }),
  );
  leaf(tag, 'rm <key>', 'remove a tag from a device')
    .requiredOption('--device <device>', 'device')
    .action(async (key: string, opts: ScopeOptions) =>
      runCommand(opts, async (ctx) => {
        await (await ctx.client()).delete(`${ownerPath({ device: opts.device })}/tags/${encodeURIComponent(key)}`);
        emit(ctx.output, { deleted: key }, () => `removed tag ${key}\n`);
      }),
    );
}
