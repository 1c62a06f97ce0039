import type { Command } from 'commander';
import { FlotillaError, USER_ROUTES, roleSchema } from '@flotilla/protocol';
import type { ApiClient } from '../api-client/api-client.js';
import { emit, formatTable } from '../output/output.js';
import { checkArg, leaf, runCommand } from './context.js';

function invitationId(id: string): number {
  if (!/^\d{1,12}$/.test(id))
    throw new FlotillaError('VALIDATION_FAILED', `invalid invitation id ${JSON.stringify(id)}: a number`);
  return Number(id);
}

/**
 * Organizations and invitations. Nobody is added to an organization directly: an admin invites a username, and the
 * user accepts (or declines) with `flotilla invitation accept|decline <id>`.
 */
export function registerOrgCommands(program: Command): void {
  const org = program.command('org').description('organizations: members and invitations');

  leaf(org, 'list', 'list your organizations').action(async (opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const { items } = await (await ctx.client()).call(USER_ROUTES.listOrganizations);
      emit(ctx.output, items, () =>
        formatTable(
          ['handle', 'name', 'role'],
          items.map((o) => [o.handle, o.name, o.role ?? null]),
        ),
      );
    }),
  );

  leaf(org, 'create <name>', 'create an organization (you become its admin)')
    .option('--handle <handle>', 'short name used in commands (default: from the name)')
    .action(async (name: string, opts: { handle?: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const body = opts.handle === undefined ? { name } : { name, handle: opts.handle };
        const created = await (await ctx.client()).call(USER_ROUTES.createOrganization, { body });
        emit(ctx.output, created, () => `created organization ${created.handle}\n`);
      }),
    );

  leaf(org, 'members <org>', 'list the members of an organization').action(
    async (ref: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const { items } = await (await ctx.client()).call(USER_ROUTES.listMembers, { params: { org: ref } });
        emit(ctx.output, items, () =>
          formatTable(
            ['username', 'role', 'email'],
            items.map((m) => [m.user.username, m.role, m.user.email]),
          ),
        );
      }),
  );

  leaf(
    org,
    'invite <org> <username>',
    'invite a user to an organization (admins); they join once they accept. The answer is the same whether or not the user exists',
  )
    .option('--role <role>', 'admin, member or observer (reads only; no shell or tunnel)', 'member')
    .action(async (ref: string, username: string, opts: { role: string; json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const role = checkArg(roleSchema, opts.role, '--role');
        await (await ctx.client()).call(USER_ROUTES.invite, { params: { org: ref }, body: { username, role } });
        emit(
          ctx.output,
          { organization: ref, username, role },
          () =>
            `invited ${username} to ${ref} as ${role}; if that user exists, they see it in \`flotilla invitations\`\n`,
        );
      }),
    );

  leaf(
    org,
    'role <org> <username> <role>',
    "set a member's role (admins): admin, member or observer; in force at once (an observer's shells and tunnels end)",
  ).action(async (ref: string, username: string, roleArg: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      const role = checkArg(roleSchema, roleArg, '<role>');
      const client = await ctx.client();
      const userId = await memberId(client, ref, username);
      const set = await client.call(USER_ROUTES.setMemberRole, {
        params: { org: ref, userId },
        body: { role },
      });
      emit(ctx.output, set, () => `${set.user.username} is now ${set.role} in ${ref}\n`);
    }),
  );

  leaf(org, 'remove <org> <username>', 'remove a member from an organization (admins)').action(
    async (ref: string, username: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const client = await ctx.client();
        const userId = await memberId(client, ref, username);
        await client.call(USER_ROUTES.removeMember, { params: { org: ref, userId } });
        emit(ctx.output, { organization: ref, removed: username }, () => `removed ${username} from ${ref}\n`);
      }),
  );

  leaf(program, 'invitations', 'list your pending invitations to organizations').action(
    async (opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const { items } = await (await ctx.client()).call(USER_ROUTES.listInvitations);
        emit(ctx.output, items, () =>
          items.length === 0
            ? 'no pending invitations\n'
            : formatTable(
                ['id', 'organization', 'role', 'invited by', 'expires'],
                items.map((i) => [i.id, i.organization.handle, i.role, i.invitedBy, i.expiresAt]),
              ),
        );
      }),
  );

  const invitation = program.command('invitation').description('answer an invitation to an organization');
  leaf(invitation, 'accept <id>', 'accept an invitation: join the organization with its role').action(
    async (id: string, opts: { json?: boolean }) =>
      runCommand(opts, async (ctx) => {
        const { organization } = await (await ctx.client()).call(USER_ROUTES.acceptInvitation, {
          params: { id: invitationId(id) },
        });
        emit(ctx.output, { organization }, () => `joined ${organization.handle} as ${organization.role ?? 'member'}\n`);
      }),
  );
  leaf(invitation, 'decline <id>', 'decline an invitation').action(async (id: string, opts: { json?: boolean }) =>
    runCommand(opts, async (ctx) => {
      await (await ctx.client()).call(USER_ROUTES.declineInvitation, { params: { id: invitationId(id) } });
      emit(ctx.output, { declined: Number(id) }, () => `declined invitation ${id}\n`);
    }),
  );
}

/** The user id of member `username` of organization `ref`: the member routes take ids, which the member list gives. */
async function memberId(client: ApiClient, ref: string, username: string): Promise<number> {
  const { items } = await client.call(USER_ROUTES.listMembers, { params: { org: ref } });
  const member = items.find((m) => m.user.username === username);
  if (!member) throw new FlotillaError('USER_NOT_FOUND', `no member "${username}" in ${ref}`);
  return member.user.id;
}
