import { USER_ROUTES } from '@flotilla/protocol';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';
import { ApiKeys } from './api-keys.js';

export function OrganizationsPage() {
  const api = useApi();
  const orgs = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  return (
    <>
      <section aria-labelledby="orgs-title">
        <div className="page-head">
          <h1 id="orgs-title">Organizations</h1>
        </div>
        <ErrorText error={orgs.error} />
        {orgs.data?.items.map((org) => (
          <article key={org.id} className="card" aria-labelledby={`org-${org.id}`}>
            <h2 id={`org-${org.id}`}>
              {org.name} <span className="muted">@{org.handle}</span>
            </h2>
            {org.role && <p>Your role: {org.role}</p>}
            <Members org={org.handle} />
          </article>
        ))}
      </section>
      <ApiKeys />
    </>
  );
}

function Members({ org }: { org: string }) {
  const api = useApi();
  const members = useResource(`members:${org}`, () => api.call(USER_ROUTES.listMembers, { params: { org } }));
  if (members.error) return <ErrorText error={members.error} />;
  if (!members.data) return <p className="muted">Loading members…</p>;
  return (
    <table className="data">
      <caption>Members</caption>
      <thead>
        <tr>
          <th scope="col">User</th>
          <th scope="col">Email</th>
          <th scope="col">Role</th>
        </tr>
      </thead>
      <tbody>
        {members.data.items.map((member) => (
          <tr key={member.user.id}>
            <th scope="row">{member.user.username}</th>
            <td>{member.user.email ?? '—'}</td>
            <td>{member.role}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
