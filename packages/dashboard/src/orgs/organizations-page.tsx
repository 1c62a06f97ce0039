import { USER_ROUTES } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';
import { ApiKeys } from './api-keys.js';
import { PendingInvitations } from './invitations.js';
import { Members } from './members.js';

export function OrganizationsPage() {
  const api = useApi();
  const orgs = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  return (
    <>
      <section aria-labelledby="orgs-title">
        <div className="page-head">
          <h1 id="orgs-title">Organizations</h1>
        </div>
        <PendingInvitations onJoined={orgs.reload} />
        <ErrorText error={orgs.error} />
        {orgs.data?.items.length === 0 && <p className="page-status">You belong to no organization yet.</p>}
        {orgs.data?.items.map((org) => (
          <article key={org.id} className="card" aria-labelledby={`org-${org.id}`}>
            <h2 id={`org-${org.id}`}>
              {org.name} <span className="muted">@{org.handle}</span>
            </h2>
            {org.role && <p>Your role: {org.role}</p>}
            <Members org={org.handle} admin={org.role === 'admin'} onOwnRoleChanged={orgs.reload} />
          </article>
        ))}
      </section>
      <ApiKeys />
    </>
  );
}
