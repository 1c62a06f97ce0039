import type { Command } from 'commander';
import { FlotillaError, USER_ROUTES } from '@flotilla/protocol';
import { ApiClient } from '../api-client/api-client.js';
import { removeCredentials, writeCredentials } from '../credentials/credentials.js';
import { readCaFile, trustingFetch } from '../credentials/trust.js';
import { emit, formatDetails } from '../output/output.js';
import { leaf, runCommand } from './context.js';

export function registerAuthCommands(program: Command): void {
  leaf(program, 'login', 'log in to a Flotilla server and remember the credentials')
    .requiredOption('--url <url>', 'server URL, e.g. http://127.0.0.1:8080', process.env.FLOTILLA_URL)
    .option('--api-key <key>', 'an API key (create one with `flotilla key create`)')
    .option('--username <name>', 'user name, with --password')
    .option('--password <password>', 'password, with --username')
    .option('--ca <file>', "PEM CA of a server with its own CA (its config.json's balenaRootCA), kept with the login")
    .action(
      async (opts: {
        url: string;
        apiKey?: string;
        username?: string;
        password?: string;
        ca?: string;
        json?: boolean;
      }) =>
        runCommand(opts, async ({ output, env }) => {
          let url: URL;
          try {
            url = new URL(opts.url);
          } catch {
            throw new FlotillaError('VALIDATION_FAILED', `invalid --url ${JSON.stringify(opts.url)}`);
          }
          const base = url.toString().replace(/\/+$/, '');
          const caFile = opts.ca ?? env.FLOTILLA_CA;
          const ca = caFile === undefined ? undefined : await readCaFile(caFile);
          const fetch = trustingFetch(ca);
          let token: string;
          if (opts.apiKey) token = opts.apiKey;
          else if (opts.username && opts.password) {
            token = (
              await new ApiClient(base, undefined, fetch).call(USER_ROUTES.login, {
                body: { username: opts.username, password: opts.password },
              })
            ).token;
          } else throw new FlotillaError('VALIDATION_FAILED', 'give --api-key, or --username and --password');
          // Check the credentials before storing them, so a typo is caught now rather than at the next command.
          const who = await new ApiClient(base, token, fetch).call(USER_ROUTES.whoami);
          const file = await writeCredentials({ url: base, token, ...(ca === undefined ? {} : { ca }) }, env);
          emit(
            output,
            { url: base, user: who.user, credentialsFile: file },
            () => `logged in to ${base} as ${who.user.username}\n`,
          );
        }),
    );

  leaf(program, 'whoami', 'show the logged-in user and server').action(async (opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const { url } = await ctx.credentials();
      const who = await (await ctx.client()).call(USER_ROUTES.whoami);
      emit(ctx.output, { url, ...who }, () =>
        formatDetails([
          ['user', who.user.username],
          ['email', who.user.email],
          ['server', url],
          ['auth', who.authMethod],
          ['server admin', who.serverAdmin ? 'yes' : 'no'],
          ['organizations', who.organizations.map((o) => `${o.handle}${o.role ? ` (${o.role})` : ''}`).join(', ')],
        ]),
      );
    }),
  );

  leaf(program, 'logout', 'forget the stored credentials').action(async (opts: { json?: boolean }) =>
    runCommand(opts, async ({ output, env }) => {
      const removed = await removeCredentials(env);
      emit(output, { loggedOut: removed }, () => (removed ? 'logged out\n' : 'not logged in\n'));
    }),
  );
}
