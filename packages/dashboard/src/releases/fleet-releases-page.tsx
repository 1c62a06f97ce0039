import { USER_ROUTES } from '@flotilla/protocol';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { FleetNav } from '../fleets/fleet-nav.js';
import { ErrorText } from '../ui/error-text.js';
import { short, timeAgo } from '../ui/format.js';
import { useNow } from '../ui/use-now.js';
import { imageSizeText, releaseSize } from './release-size.js';
import { ReleaseStatusBadge } from './release-status.js';

/** A fleet's releases, newest first: what each is, who deployed it, its services and what their images weigh. */
export function FleetReleasesPage() {
  const { slug = '' } = useParams();
  const api = useApi();
  const fleet = useResource(`fleet:${slug}`, () => api.call(USER_ROUTES.getFleet, { params: { slug } }));
  const releases = useResource(`releases:${slug}`, () => api.call(USER_ROUTES.listFleetReleases, { params: { slug } }));
  const now = useNow();
  const items = releases.data?.items;
  const target = fleet.data?.targetRelease?.commit ?? null;

  return (
    <section aria-labelledby="releases-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          <Link to={`/fleets/${encodeURIComponent(slug)}`}>{fleet.data?.name ?? slug}</Link> /
        </p>
        <h1 id="releases-title">Releases</h1>
      </div>
      <FleetNav slug={slug} />
      <ErrorText error={fleet.error ?? releases.error} />
      {fleet.data && (
        <p className="fleet-facts">
          <span>
            Devices run:{' '}
            {fleet.data.targetRelease ? (
              <>
                {fleet.data.targetRelease.version} <code>{short(fleet.data.targetRelease.commit)}</code>{' '}
                {fleet.data.pinnedRelease !== null ? '(the fleet is pinned to it)' : '(the latest successful release)'}
              </>
            ) : (
              'no release yet'
            )}
          </span>
        </p>
      )}
      {items === undefined ? (
        releases.loading && <p className="page-status">Loading releases…</p>
      ) : items.length === 0 ? (
        <p className="page-status">
          No release yet: <code>flotilla deploy {slug}</code> builds and deploys one.
        </p>
      ) : (
        <div className="table-scroll">
          <table className="data stacked releases-table">
            <caption className="visually-hidden">Releases of the fleet, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Commit</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Deployed by</th>
                <th scope="col">Services</th>
                <th scope="col">Size</th>
              </tr>
            </thead>
            <tbody>
              {items.map((release) => (
                <tr key={release.id}>
                  <th scope="row">
                    <Link to={`/releases/${release.id}`}>{release.version}</Link>
                    {release.commit === target && <span className="tag">devices run it</span>}
                  </th>
                  <td data-label="Commit">
                    <code>{short(release.commit)}</code>
                  </td>
                  <td data-label="Status">
                    <ReleaseStatusBadge status={release.status} />
                  </td>
                  <td data-label="Created">
                    <time dateTime={release.createdAt} title={release.createdAt}>
                      {timeAgo(release.createdAt, now)}
                    </time>
                  </td>
                  <td data-label="Deployed by">
                    {release.createdBy?.username ?? <span className="muted">unknown</span>}
                  </td>
                  <td data-label="Services">
                    <ul className="service-sizes">
                      {release.services.map((s) => (
                        <li key={s.id}>
                          {s.name} <span className="muted">{imageSizeText(s.imageSize)}</span>
                        </li>
                      ))}
                    </ul>
                  </td>
                  <td data-label="Size" className="size">
                    {releaseSize(release)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
