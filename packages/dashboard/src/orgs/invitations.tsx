import { type Invitation, USER_ROUTES } from '@flotilla/protocol';
import { useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';

/** The signed-in user's pending invitations, to accept (joining with the role offered) or decline. */
export function PendingInvitations({ onJoined }: { onJoined(): void }) {
  const api = useApi();
  const invitations = useResource('invitations', () => api.call(USER_ROUTES.listInvitations));
  const [result, setResult] = useState<{ text: string; ok: boolean } | null>(null);

  const answer = async (invitation: Invitation, accept: boolean) => {
    setResult(null);
    const name = invitation.organization.name;
    try {
      if (accept) {
        const { organization } = await api.call(USER_ROUTES.acceptInvitation, { params: { id: invitation.id } });
        setResult({ text: `You joined ${organization.name} as ${organization.role ?? invitation.role}.`, ok: true });
        onJoined();
      } else {
        await api.call(USER_ROUTES.declineInvitation, { params: { id: invitation.id } });
        setResult({ text: `You declined the invitation to ${name}.`, ok: true });
      }
    } catch (e) {
      setResult({ text: describeError(e), ok: false });
    }
    invitations.reload();
  };

  const items = invitations.data?.items ?? [];
  return (
    <section aria-labelledby="invitations-title" hidden={items.length === 0 && !result && !invitations.error}>
      <h2 id="invitations-title">Invitations for you</h2>
      <ErrorText error={invitations.error} />
      {items.length > 0 && (
        <ul className="invitations">
          {items.map((invitation) => (
            <li key={invitation.id} className="card">
              <p>
                <strong>{invitation.organization.name}</strong>{' '}
                <span className="muted">@{invitation.organization.handle}</span> invites you as{' '}
                <strong>{invitation.role}</strong>
                {invitation.invitedBy && <> (from {invitation.invitedBy})</>}.
              </p>
              <div className="button-row">
                <button type="button" onClick={() => answer(invitation, true)}>
                  Accept<span className="visually-hidden"> the invitation to {invitation.organization.name}</span>
                </button>
                <button type="button" className="subtle" onClick={() => answer(invitation, false)}>
                  Decline<span className="visually-hidden"> the invitation to {invitation.organization.name}</span>
                </button>
              </div>
            </li>
          ))}
        </ul>
      )}
      <div aria-live="polite">{result && <p className={result.ok ? 'success' : 'error'}>{result.text}</p>}</div>
    </section>
  );
}
