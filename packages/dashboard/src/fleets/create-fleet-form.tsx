import { DEVICE_TYPES, USER_ROUTES, WRITER_ROLES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { Link } from 'react-router';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';

export function CreateFleetForm({ onCreated }: { onCreated(): void }) {
  const api = useApi();
  const orgs = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  const writable = (orgs.data?.items ?? []).filter((org) => org.role === undefined || WRITER_ROLES.includes(org.role));
  const [name, setName] = useState('');
  const [deviceType, setDeviceType] = useState('generic-amd64');
  const [organization, setOrganization] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<{ name: string; slug: string } | null>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setCreated(null);
    try {
      const org = organization || writable[0]?.handle;
      const fleet = await api.call(USER_ROUTES.createFleet, {
        body: { name: name.trim(), deviceType, ...(org ? { organization: org } : {}) },
      });
      setCreated({ name: fleet.name, slug: fleet.slug });
      setName('');
      onCreated();
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card form-grid" onSubmit={submit} aria-labelledby="create-fleet-title">
      <h2 id="create-fleet-title">Create a fleet</h2>
      <label htmlFor="fleet-name">Name</label>
      <input id="fleet-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
      <label htmlFor="fleet-device-type">Device type</label>
      <select id="fleet-device-type" value={deviceType} onChange={(e) => setDeviceType(e.target.value)}>
        {DEVICE_TYPES.map((type) => (
          <option key={type} value={type}>
            {type}
          </option>
        ))}
      </select>
      {writable.length > 1 && (
        <>
          <label htmlFor="fleet-organization">Organization</label>
          <select id="fleet-organization" value={organization} onChange={(e) => setOrganization(e.target.value)}>
            {writable.map((org) => (
              <option key={org.id} value={org.handle}>
                {org.name}
              </option>
            ))}
          </select>
        </>
      )}
      <div className="form-actions">
        <button type="submit" className="primary" disabled={busy || name.trim() === ''}>
          {busy ? 'Creating…' : 'Create fleet'}
        </button>
      </div>
      <div aria-live="polite" className="form-result">
        {created && (
          <p className="success">
            Fleet <Link to={`/fleets/${encodeURIComponent(created.slug)}`}>{created.name}</Link> created.
          </p>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </div>
    </form>
  );
}
