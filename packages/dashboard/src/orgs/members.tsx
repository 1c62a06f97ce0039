import { type Member, type Role, USER_ROUTES, roleSchema } from '@flotilla/protocol';
import { type FormEvent, useId, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi, useSession } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { ErrorText } from '../ui/error-text.js';

const ROLES = roleSchema.options;
export const ROLE_HINTS: Record<Role, string> = {
  admin: 'everything, members too',
  member: 'fleets, devices, releases, shells',
  observer: 'reads only',
};

export interface MembersProps {
  /** The organization's handle. */
  org: string;
  /** Whether the signed-in user administers it: only then are the controls shown (the server decides anyway). */
  admin: boolean;
  /** The signed-in user's own role changed here: what the page shows of it must be read again. */
  onOwnRoleChanged(): void;
}

/** The organization's members; an admin invites, sets roles and removes members here. */
export function Members({ org, admin, onOwnRoleChanged }: MembersProps) {
  const api = useApi();
  const { user } = useSession();
  const members = useResource(`members:${org}`, () => api.call(USER_ROUTES.listMembers, { params: { org } }));
  const [result, setResult] = useState<{ text: string; ok: boolean } | null>(null);
  const [removing, setRemoving] = useState<Member | null>(null);

  const setRole = async (member: Member, role: Role) => {
    setResult(null);
    try {
      const set = await api.call(USER_ROUTES.setMemberRole, {
        params: { org, userId: member.user.id },
        body: { role },
      });
      setResult({ text: `${set.user.username} is now ${set.role}.`, ok: true });
      members.reload();
      if (set.user.id === user?.id) onOwnRoleChanged();
    } catch (e) {
      setResult({ text: describeError(e), ok: false });
    }
  };

  if (members.error) return <ErrorText error={members.error} />;
  if (!members.data) return <p className="muted">Loading members…</p>;
  return (
    <>
      <div className="table-scroll">
        <table className="data">
          <caption>Members</caption>
          <thead>
            <tr>
              <th scope="col">User</th>
              <th scope="col">Email</th>
              <th scope="col">Role</th>
              {admin && (
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {members.data.items.map((member) => (
              <tr key={member.user.id}>
                <th scope="row">{member.user.username}</th>
                <td>{member.user.email ?? '—'}</td>
                <td>{admin ? <RolePicker member={member} onSet={(role) => setRole(member, role)} /> : member.role}</td>
                {admin && (
                  <td>
                    <button type="button" className="danger subtle" onClick={() => setRemoving(member)}>
                      Remove<span className="visually-hidden"> {member.user.username}</span>
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div aria-live="polite">{result && <p className={result.ok ? 'success' : 'error'}>{result.text}</p>}</div>
      {admin && <InviteForm org={org} />}
      {removing && (
        <ConfirmDialog
          title={`Remove ${removing.user.username} from ${org}?`}
          confirmLabel="Remove member"
          onConfirm={async () => {
            await api.call(USER_ROUTES.removeMember, { params: { org, userId: removing.user.id } });
            setResult({ text: `${removing.user.username} was removed.`, ok: true });
            members.reload();
            if (removing.user.id === user?.id) onOwnRoleChanged();
          }}
          onClose={() => setRemoving(null)}
        >
          <p>They lose access to its fleets and devices at once; their open streams, shells and tunnels end.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

/** A member's role as a picker and a button: nothing changes until the button is pressed. */
function RolePicker({ member, onSet }: { member: Member; onSet(role: Role): Promise<void> }) {
  const [role, setRole] = useState<Role>(member.role);
  const [busy, setBusy] = useState(false);
  const id = useId();
  return (
    <span className="row-actions">
      <label htmlFor={id} className="visually-hidden">
        Role of {member.user.username}
      </label>
      <select id={id} value={role} onChange={(e) => setRole(roleSchema.parse(e.target.value))}>
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {r}
          </option>
        ))}
      </select>
      <button
        type="button"
        disabled={role === member.role || busy}
        onClick={async () => {
          setBusy(true);
          await onSet(role).finally(() => setBusy(false));
        }}
      >
        Set role<span className="visually-hidden"> of {member.user.username}</span>
      </button>
    </span>
  );
}

/** Invites a user by name. The answer is the same whether or not the user exists, and says so. */
function InviteForm({ org }: { org: string }) {
  const api = useApi();
  const [username, setUsername] = useState('');
  const [role, setRole] = useState<Role>('member');
  const [result, setResult] = useState<{ text: string; ok: boolean } | null>(null);
  const nameId = useId();
  const roleId = useId();
  const invite = async (event: FormEvent) => {
    event.preventDefault();
    setResult(null);
    const name = username.trim();
    try {
      await api.call(USER_ROUTES.invite, { params: { org }, body: { username: name, role } });
      setUsername('');
      setResult({
        text: `Invitation sent to ${name} as ${role}, if that user exists: they accept it on their Organizations page.`,
        ok: true,
      });
    } catch (e) {
      setResult({ text: describeError(e), ok: false });
    }
  };
  return (
    <form className="inline-form" onSubmit={invite} aria-label={`Invite a user to ${org}`}>
      <label htmlFor={nameId}>Invite username</label>
      <input
        id={nameId}
        required
        maxLength={200}
        autoComplete="off"
        value={username}
        onChange={(e) => setUsername(e.target.value)}
      />
      <label htmlFor={roleId}>as</label>
      <select id={roleId} value={role} onChange={(e) => setRole(roleSchema.parse(e.target.value))}>
        {ROLES.map((r) => (
          <option key={r} value={r}>
            {r} ({ROLE_HINTS[r]})
          </option>
        ))}
      </select>
      <button type="submit" disabled={username.trim() === ''}>
        Invite
      </button>
      <span aria-live="polite">{result && <span className={result.ok ? 'success' : 'error'}>{result.text}</span>}</span>
    </form>
  );
}
