import type { Command } from 'commander';
import { FlotillaError, USER_ROUTES } from '@flotilla/protocol';
import { emit, formatTable } from '../output/output.js';
import { leaf, runCommand } from './context.js';

export function registerKeyCommands(program: Command): void {
  const key = program.command('key').description('manage your API keys');

  leaf(key, 'create <name>', 'create an API key (the secret is shown once)')
    .option('--description <text>', 'what the key is for')
    .option('--expires <iso-date>', 'expiry, e.g. 2027-01-01T00:00:00Z')
    .action(async (name: string, opts: { description?: string; expires?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        if (opts.expires !== undefined && Number.isNaN(Date.parse(opts.expires)))
          throw new FlotillaError(
            'VALIDATION_FAILED',
            `invalid --expires ${JSON.stringify(opts.expires)}: an ISO-8601 date`,
          );
        const body = {
          name,
          ...(opts.description === undefined ? {} : { description: opts.description }),
          ...(opts.expires === undefined ? {} : { expiresAt: new Date(opts.expires).toISOString() }),
        };
        const created = await (await ctx.client()).call(USER_ROUTES.createApiKey, { body });
        emit(
          ctx.output,
          created,
          () => `created API key ${created.id} (${created.name}); it is shown only now:\n${created.key}\n`,
        );
      }),
    );

  leaf(key, 'list', 'list your API keys').action(async (opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const { items } = await (await ctx.client()).call(USER_ROUTES.listApiKeys);
      emit(ctx.output, items, () =>
        formatTable(
          ['id', 'name', 'description', 'created', 'expires', 'last used'],
          items.map((k) => [k.id, k.name, k.description, k.createdAt, k.expiresAt, k.lastUsedAt]),
        ),
      );
    }),
  );

  leaf(key, 'rm <id>', 'revoke an API key').action(async (id: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      if (!/^\d+$/.test(id))
        throw new FlotillaError('VALIDATION_FAILED', `invalid key id ${JSON.stringify(id)}: a number`);
      await (await ctx.client()).call(USER_ROUTES.deleteApiKey, { params: { id } });
      emit(ctx.output, { deleted: Number(id) }, () => `revoked API key ${id}\n`);
    }),
  );
}
