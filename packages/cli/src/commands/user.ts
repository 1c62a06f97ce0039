import type { Command } from 'commander';
import { USER_ROUTES, createUserRequestSchema } from '@flotilla/protocol';
import { emit } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

export function registerUserCommands(program: Command): void {
  const user = program.command('user').description('users of the server (server administrators)');

  leaf(user, 'create <username>', 'create a user (server administrators only)')
    .requiredOption('--password <password>', 'their first password (8+ characters)')
    .option('--email <email>', 'their email address')
    .option('--server-admin', 'let them create users too')
    .action(
      async (username: string, opts: { password: string; email?: string; serverAdmin?: boolean; json?: boolean }) =>
        runCommand(opts, async (ctx) => {
          const body = checkArg(
            createUserRequestSchema,
            {
              username,
              password: opts.password,
              ...(opts.email === undefined ? {} : { email: opts.email }),
              ...(opts.serverAdmin ? { serverAdmin: true } : {}),
            },
            'user',
          );
          const created = await (await ctx.client()).call(USER_ROUTES.createUser, { body });
          emit(ctx.output, created, () => `created user ${created.username}\n`);
        }),
    );
}
