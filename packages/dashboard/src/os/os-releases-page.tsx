import { USER_ROUTES, formatBytes } from '@flotilla/protocol';
import { useId } from 'react';
import { useSearchParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';
import { timeAgo } from '../ui/format.js';
import { useNow } from '../ui/use-now.js';

/**
 * The host OS releases of the user's organizations, newest first (what `flotilla os release push` recorded): version,
 * device type, size of the slot image, who pushed it and when, the image's digest. Filtered by organization and
 * device type, both kept in the URL. The organization is asked of the server; the device type is chosen among those
 * the organization has, so the list is filtered here from the same answer the picker is built from.
 */
export function OsReleasesPage() {
  const api = useApi();
  const id = useId();
  const [params, setParams] = useSearchParams();
  const organization = params.get('organization') ?? '';
  const deviceType = params.get('deviceType') ?? '';
  const organizations = useResource('organizations', () => api.call(USER_ROUTES.listOrganizations));
  const releases = useResource(`os-releases:${organization}`, () =>
    api.call(USER_ROUTES.listOsReleases, { query: organization === '' ? {} : { organization } }),
  );
  const now = useNow();
  const items = releases.data?.items;
  const types = [...new Set(items?.map((r) => r.deviceType))].sort();
  if (deviceType !== '' && !types.includes(deviceType)) types.push(deviceType);
  const shown = items?.filter((r) => deviceType === '' || r.deviceType === deviceType);
  const several = (organizations.data?.items.length ?? 0) > 1;
  const choose = (name: 'organization' | 'deviceType', value: string) => {
    const next = new URLSearchParams(params);
    if (value === '') next.delete(name);
    else next.set(name, value);
    // Another organization has other device types: the type chosen for the last one would hide everything.
    if (name === 'organization') next.delete('deviceType');
    setParams(next, { replace: true });
  };

  return (
    <section aria-labelledby="os-releases-title">
      <div className="page-head">
        <h1 id="os-releases-title">OS releases</h1>
      </div>
      <p className="muted">
        Host OS images for A/B updates, by device type. <code>flotilla os release push</code> adds one; a device's or a
        fleet's page installs one.
      </p>
      <div className="filters">
        {several && (
          <>
            <label htmlFor={`${id}-org`}>Organization</label>
            <select id={`${id}-org`} value={organization} onChange={(e) => choose('organization', e.target.value)}>
              <option value="">All</option>
              {organizations.data?.items.map((o) => (
                <option key={o.id} value={o.handle}>
                  {o.name}
                </option>
              ))}
            </select>
          </>
        )}
        <label htmlFor={`${id}-type`}>Device type</label>
        <select id={`${id}-type`} value={deviceType} onChange={(e) => choose('deviceType', e.target.value)}>
          <option value="">All</option>
          {types.map((type) => (
            <option key={type} value={type}>
              {type}
            </option>
          ))}
        </select>
      </div>
      <ErrorText error={releases.error} />
      {shown === undefined ? (
        releases.loading && <p className="page-status">Loading OS releases…</p>
      ) : shown.length === 0 ? (
        <p className="page-status">
          No OS release{deviceType === '' ? '' : ` for ${deviceType}`} yet:{' '}
          <code>flotilla os release push {deviceType || '<device-type>'} &lt;version&gt; &lt;image&gt;</code> pushes
          one.
        </p>
      ) : (
        <div className="table-scroll">
          <table className="data stacked os-releases-table">
            <caption className="visually-hidden">OS releases, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Device type</th>
                {several && <th scope="col">Organization</th>}
                <th scope="col">Size</th>
                <th scope="col">Pushed by</th>
                <th scope="col">Pushed</th>
                <th scope="col">Image digest</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((release) => (
                <tr key={release.id}>
                  <th scope="row">{release.version}</th>
                  <td data-label="Device type">{release.deviceType}</td>
                  {several && <td data-label="Organization">{release.organization}</td>}
                  <td data-label="Size" title={`${release.size} bytes`}>
                    {formatBytes(release.size)}
                  </td>
                  <td data-label="Pushed by">{release.createdBy ?? <span className="muted">deleted user</span>}</td>
                  <td data-label="Pushed">
                    <time dateTime={release.createdAt} title={release.createdAt}>
                      {timeAgo(release.createdAt, now)}
                    </time>
                  </td>
                  <td data-label="Image digest" className="digest">
                    <code title={release.image}>{release.manifestDigest}</code>
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
