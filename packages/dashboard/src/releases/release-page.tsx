import { USER_ROUTES } from '@flotilla/protocol';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ErrorText } from '../ui/error-text.js';
import { rolloutStatusWord } from '../rollouts/rollout-words.js';
import { type Fact, FactList } from '../ui/fact-list.js';
import { timeAgo } from '../ui/format.js';
import { useNow } from '../ui/use-now.js';
import { CompositionView } from './composition-view.js';
import { DevicePin } from './device-pin.js';
import { FleetPin } from './fleet-pin.js';
import { imageSizeText, releaseSize } from './release-size.js';
import { ReleaseStatusBadge } from './release-status.js';

/** One release: what it is, its services and images, its compose composition, and pinning the fleet or a device. */
export function ReleasePage() {
  const { ref = '' } = useParams();
  const api = useApi();
  const release = useResource(`release:${ref}`, () => api.call(USER_ROUTES.getRelease, { params: { ref } }));
  const r = release.data;
  const fleet = useResource(r ? `fleet:${r.fleet}` : null, () =>
    api.call(USER_ROUTES.getFleet, { params: { slug: r?.fleet ?? '' } }),
  );
  const now = useNow();
  const staged = r && fleet.data?.rollout?.release.id === r.id ? fleet.data.rollout : null;

  const facts: Fact[] = r
    ? [
        ['Status', <ReleaseStatusBadge key="s" status={r.status} />],
        [
          'Commit',
          <code key="c" className="uuid">
            {r.commit}
          </code>,
        ],
        [
          'Created',
          <time key="t" dateTime={r.createdAt} title={r.createdAt}>
            {timeAgo(r.createdAt, now)}
          </time>,
        ],
        ['Deployed by', r.createdBy?.username ?? 'unknown'],
        ['Size', releaseSize(r)],
        ['Final', r.isFinal ? 'yes' : 'no (a draft)'],
        // Only the fleet's latest rollout is known here (the fleet view carries it in short).
        ...(staged
          ? ([
              [
                'Staged',
                <Link key="ro" to={`/fleets/${encodeURIComponent(r.fleet)}/rollout`}>
                  by rollout #{staged.id} ({rolloutStatusWord(staged.status).toLowerCase()})
                </Link>,
              ],
            ] satisfies Fact[])
          : []),
      ]
    : [];

  return (
    <section className="release-page" aria-labelledby="release-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          {r && (
            <>
              <Link to={`/fleets/${encodeURIComponent(r.fleet)}`}>{fleet.data?.name ?? r.fleet}</Link> /{' '}
              <Link to={`/fleets/${encodeURIComponent(r.fleet)}/releases`}>Releases</Link> /
            </>
          )}
        </p>
        <h1 id="release-title">{r ? `Release ${r.version}` : 'Release'}</h1>
      </div>
      <ErrorText error={release.error} />
      {!r && release.loading && <p className="page-status">Loading the release…</p>}
      {r && (
        <div className="release-grid">
          <div className="release-main">
            <FactList facts={facts} />
            {r.notes !== null && r.notes !== '' && (
              <section aria-labelledby="notes-title">
                <h2 id="notes-title">Notes</h2>
                <p className="release-notes">{r.notes}</p>
              </section>
            )}
            <section aria-labelledby="services-title">
              <h2 id="services-title">Services</h2>
              <div className="table-scroll">
                <table className="data stacked">
                  <caption className="visually-hidden">Services of the release with their images</caption>
                  <thead>
                    <tr>
                      <th scope="col">Service</th>
                      <th scope="col">Image</th>
                      <th scope="col">Size</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.services.map((s) => (
                      <tr key={s.id}>
                        <th scope="row">{s.name}</th>
                        <td data-label="Image" className="image">
                          {s.image === '' ? <span className="muted">not pushed yet</span> : <code>{s.image}</code>}
                        </td>
                        <td data-label="Size" className="size">
                          {imageSizeText(s.imageSize)}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </section>
            <CompositionView composition={r.composition} />
          </div>
          <div className="release-side">
            <ErrorText error={fleet.error} />
            {fleet.data && <FleetPin release={r} fleet={fleet.data} onChanged={(f) => fleet.mutate(() => f)} />}
            <DevicePin release={r} />
          </div>
        </div>
      )}
    </section>
  );
}
