import { type Fleet, USER_ROUTES } from '@flotilla/protocol';
import { useState } from 'react';
import { Link } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { useWritableOrganizations } from '../auth/use-can-write.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { ErrorText } from '../ui/error-text.js';
import { short } from '../ui/format.js';
import { LiveIndicator } from '../ui/live-indicator.js';
import { CreateFleetForm } from './create-fleet-form.js';
import { FleetCounts } from './fleet-counts.js';
import { useFleetCounts } from './use-fleet-counts.js';

export function FleetsPage() {
  const api = useApi();
  const fleets = useResource('fleets', () => api.call(USER_ROUTES.listFleets));
  const [deleting, setDeleting] = useState<Fleet | null>(null);
  const items = fleets.data?.items;
  const live = useFleetCounts(items ? items.map((f) => f.slug).join(' ') : null);
  // An observer's organizations offer no delete (the server would refuse it anyway).
  const writable = useWritableOrganizations();

  return (
    <section aria-labelledby="fleets-title">
      <div className="page-head">
        <h1 id="fleets-title">Fleets</h1>
        {items && items.length > 0 && <LiveIndicator state={live.live} />}
      </div>
      <ErrorText error={fleets.error} />
      {items === undefined ? (
        fleets.loading && <p className="page-status">Loading fleets…</p>
      ) : items.length === 0 ? (
        <p className="page-status">No fleet yet. Create the first one below.</p>
      ) : (
        <div className="table-scroll">
          <table className="data">
            <caption className="visually-hidden">Fleets with their devices by state and the release they run</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Device type</th>
                <th scope="col">Organization</th>
                <th scope="col">Release</th>
                <th scope="col">Devices</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((fleet) => (
                <tr key={fleet.id}>
                  <th scope="row">
                    <Link to={`/fleets/${encodeURIComponent(fleet.slug)}`}>{fleet.name}</Link>
                  </th>
                  <td>{fleet.deviceType}</td>
                  <td>{fleet.organization}</td>
                  <td>
                    <FleetRelease fleet={fleet} />
                  </td>
                  <td>
                    <FleetCounts slug={fleet.slug} counts={live.counts.get(fleet.slug)} />
                  </td>
                  <td>
                    {writable?.has(fleet.organization) && (
                      <button type="button" className="danger subtle" onClick={() => setDeleting(fleet)}>
                        Delete<span className="visually-hidden"> fleet {fleet.name}</span>
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <CreateFleetForm onCreated={fleets.reload} />
      {deleting && (
        <ConfirmDialog
          title={`Delete fleet ${deleting.name}?`}
          confirmLabel="Delete fleet"
          typeToConfirm={deleting.name}
          onConfirm={async () => {
            await api.call(USER_ROUTES.deleteFleet, { params: { slug: deleting.slug } });
            fleets.reload();
          }}
          onClose={() => setDeleting(null)}
        >
          <p>Its devices, releases and variables are deleted with it. The devices' keys stop working at once.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}

function FleetRelease({ fleet }: { fleet: Fleet }) {
  if (!fleet.targetRelease) return <span className="muted">none yet</span>;
  return (
    <span>
      {fleet.targetRelease.version} <code>{short(fleet.targetRelease.commit)}</code>
      {fleet.pinnedRelease !== null && <span className="tag">pinned</span>}
    </span>
  );
}
