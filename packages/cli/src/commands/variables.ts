import type { Command } from 'commander';
import {
  deviceRefSchema,
  envNameSchema,
  FlotillaError,
  serviceNameSchema,
  slugSchema,
  USER_ROUTES as R,
} from '@flotilla/protocol';
import { emit, formatTable } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

interface ScopeOptions {
  fleet?: string;
  device?: string;
  service?: string;
  json?: boolean;
}

/** The owner of the variables, from `--fleet <slug>` or `--device <uuid>`, exactly one, checked before any call. */
export type Owner = { fleet: { slug: string } } | { device: { uuid: string } };

export function ownerOf(opts: ScopeOptions): Owner {
  if ((opts.fleet === undefined) === (opts.device === undefined))
    throw new FlotillaError('VALIDATION_FAILED', 'give exactly one of --fleet or --device');
  return opts.fleet !== undefined
    ? { fleet: { slug: checkArg(slugSchema, opts.fleet, 'fleet') } }
    : { device: { uuid: checkArg(deviceRefSchema, opts.device, 'device') } };
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
      const owner = ownerOf(opts);
      const client = await ctx.client();
      const service =
        opts.service === undefined ? {} : { service: checkArg(serviceNameSchema, opts.service, 'service') };
      const saved =
        kind === 'env'
          ? 'fleet' in owner
            ? await client.call(R.setFleetEnv, {
                params: owner.fleet,
                body: { name: checkArg(envNameSchema, name, 'name'), value, ...service },
              })
            : await client.call(R.setDeviceEnv, {
                params: owner.device,
                body: { name: checkArg(envNameSchema, name, 'name'), value, ...service },
              })
          : 'fleet' in owner
            ? await client.call(R.setFleetConfig, { params: owner.fleet, body: { name, value } })
            : await client.call(R.setDeviceConfig, { params: owner.device, body: { name, value } });
      emit(ctx.output, saved, () => `set ${saved.name}${saved.service ? ` for ${saved.service}` : ''}\n`);
    }),
  );

  scoped(leaf(group, 'list', `list ${kind} variables`)).action(async (opts: ScopeOptions) =>
    runCommand(opts, async (ctx) => {
      const owner = ownerOf(opts);
      const client = await ctx.client();
      const { items } =
        kind === 'env'
          ? 'fleet' in owner
            ? await client.call(R.listFleetEnv, { params: owner.fleet })
            : await client.call(R.listDeviceEnv, { params: owner.device })
          : 'fleet' in owner
            ? await client.call(R.listFleetConfig, { params: owner.fleet })
            : await client.call(R.listDeviceConfig, { params: owner.device });
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
      const owner = ownerOf(opts);
      const client = await ctx.client();
      const query = { service: opts.service };
      if (kind === 'env')
        await ('fleet' in owner
          ? client.call(R.deleteFleetEnv, { params: { ...owner.fleet, name }, query })
          : client.call(R.deleteDeviceEnv, { params: { ...owner.device, name }, query }));
      else
        await ('fleet' in owner
          ? client.call(R.deleteFleetConfig, { params: { ...owner.fleet, name } })
          : client.call(R.deleteDeviceConfig, { params: { ...owner.device, name } }));
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
        const owner = ownerOf({ device: opts.device });
        if (!('device' in owner)) throw new FlotillaError('VALIDATION_FAILED', 'give --device');
        const saved = await (await ctx.client()).call(R.setDeviceTag, { params: owner.device, body: { key, value } });
        emit(ctx.output, saved, () => `tagged ${opts.device} ${key}=${value}\n`);
      }),
    );
  scoped(leaf(tag, 'list', 'list the tags of a device, or of every device of a fleet')).action(
    async (opts: ScopeOptions) =>
      runCommand(opts, async (ctx) => {
        const owner = ownerOf(opts);
        const client = await ctx.client();
        if ('fleet' in owner) {
          const { items } = await client.call(R.listFleetTags, { params: owner.fleet });
          emit(ctx.output, items, () =>
            formatTable(
              ['device', 'key', 'value'],
              items.map((t) => [t.device, t.key, t.value]),
            ),
          );
        } else {
          const { items } = await client.call(R.listDeviceTags, { params: owner.device });
          emit(ctx.output, items, () =>
            formatTable(
              ['key', 'value'],
              items.map((t) => [t.key, t.value]),
            ),
          );
        }
      }),
  );
  leaf(tag, 'rm <key>', 'remove a tag from a device')
    .requiredOption('--device <device>', 'device')
    .action(async (key: string, opts: ScopeOptions) =>
      runCommand(opts, async (ctx) => {
        const owner = ownerOf({ device: opts.device });
        if (!('device' in owner)) throw new FlotillaError('VALIDATION_FAILED', 'give --device');
        await (await ctx.client()).call(R.deleteDeviceTag, { params: { ...owner.device, name: key } });
        emit(ctx.output, { deleted: key }, () => `removed tag ${key}\n`);
      }),
    );
}
