import { type ApiKey, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { ErrorText } from '../ui/error-text.js';
import { timeAgo } from '../ui/format.js';
import { useNow } from '../ui/use-now.js';

/** The user's API keys: a new key's secret is shown once, here, and never again (the server keeps only a hash). */
export function ApiKeys() {
  const api = useApi();
  const keys = useResource('api-keys', () => api.call(USER_ROUTES.listApiKeys));
  const [name, setName] = useState('');
  const [secret, setSecret] = useState<{ name: string; key: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [revoking, setRevoking] = useState<ApiKey | null>(null);
  const now = useNow();

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const created = await api.call(USER_ROUTES.createApiKey, { body: { name: name.trim() } });
      setSecret({ name: created.name, key: created.key });
      setName('');
      keys.reload();
    } catch (e) {
      setError(describeError(e));
    }
  };

  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">Your API keys</h2>
      <ErrorText error={keys.error} />
      {keys.data && keys.data.items.length > 0 && (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Last used</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.data.items.map((key) => (
              <tr key={key.id}>
                <th scope="row">{key.name}</th>
                <td>{timeAgo(key.createdAt, now)}</td>
                <td>{timeAgo(key.lastUsedAt, now)}</td>
                <td>
                  <button type="button" className="danger subtle" onClick={() => setRevoking(key)}>
                    Revoke<span className="visually-hidden"> key {key.name}</span>
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form className="inline-form" onSubmit={create}>
        <label htmlFor="key-name">New key name</label>
        <input id="key-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
        <button type="submit" disabled={name.trim() === ''}>
          Create key
        </button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {secret && (
        <div className="card secret" role="status">
          <p>
            Key <strong>{secret.name}</strong> created. Copy it now: it is not shown again.
          </p>
          <label htmlFor="new-key">Key</label>
          <input id="new-key" readOnly value={secret.key} onFocus={(e) => e.currentTarget.select()} />
          <button type="button" onClick={() => setSecret(null)}>
            I have copied it
          </button>
        </div>
      )}
      {revoking && (
        <ConfirmDialog
          title={`Revoke key ${revoking.name}?`}
          confirmLabel="Revoke key"
          onConfirm={async () => {
            await api.call(USER_ROUTES.deleteApiKey, { params: { id: revoking.id } });
            keys.reload();
          }}
          onClose={() => setRevoking(null)}
        >
          <p>Programs using it are refused from now on, and streams it opened end at once.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
