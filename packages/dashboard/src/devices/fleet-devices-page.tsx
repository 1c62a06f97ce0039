import { USER_ROUTES } from '@flotilla/protocol';
import { useCallback, useMemo, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { useCanWrite } from '../auth/use-can-write.js';
import { FleetNav } from '../fleets/fleet-nav.js';
import { FleetOs } from '../os/fleet-os.js';
import { ConfigJsonPanel } from '../provisioning/config-json-panel.js';
import { RolloutNotice } from '../rollouts/rollout-notice.js';
import { isActive } from '../rollouts/rollout-words.js';
import { usePolling } from '../rollouts/use-polling.js';
import { ErrorText } from '../ui/error-text.js';
import { short } from '../ui/format.js';
import { LiveIndicator } from '../ui/live-indicator.js';
import { useNow } from '../ui/use-now.js';
import { FleetWindow } from '../windows/fleet-window.js';
import { DeviceFiltersBar } from './device-filters.js';
import { type DeviceFilters, filtersFromParams, filtersKey, filtersToParams } from './device-query.js';
import { DeviceTable } from './device-table.js';
import { useDeviceRows } from './use-device-rows.js';

export function FleetDevicesPage() {
  const { slug = '' } = useParams();
  const api = useApi();
  const [params, setParams] = useSearchParams();
  const paramsText = params.toString();
  // biome-ignore lint/correctness/useExhaustiveDependencies: the text of the params is their identity
  const filters = useMemo(() => filtersFromParams(params), [paramsText]);
  const setFilters = useCallback(
    (next: DeviceFilters) => setParams(filtersToParams(next), { replace: true }),
    [setParams],
  );
  const fleet = useResource(`fleet:${slug}`, () => api.call(USER_ROUTES.getFleet, { params: { slug } }));
  const releases = useResource(`releases:${slug}`, () => api.call(USER_ROUTES.listFleetReleases, { params: { slug } }));
  // The fleet's release (shown above) and its releases (the filter) change with a deploy or a pin: the stream's one
  // `fleet-changed` event says so.
  // The OS rollout too (FleetOs asks for it again on each).
  const [fleetChanges, setFleetChanges] = useState(0);
  const rows = useDeviceRows(api, slug, filters, undefined, () => {
    fleet.reload();
    releases.reload();
    setFleetChanges((n) => n + 1);
  });
  const now = useNow();
  const role = useCanWrite(fleet.data?.organization);
  const canWrite = role === true;
  // A rollout pauses or completes on the server's timer, with no event on the stream: its notice is asked for again.
  const rolloutStatus = fleet.data?.rollout?.status;
  usePolling(fleet.reload, 5_000, rolloutStatus !== undefined && isActive(rolloutStatus));

  return (
    <section className="fleet-devices" aria-labelledby="fleet-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /
        </p>
        <h1 id="fleet-title">{fleet.data?.name ?? slug}</h1>
        <LiveIndicator state={rows.live} />
      </div>
      <FleetNav slug={slug} />
      <ErrorText error={fleet.error} />
      {fleet.data && (
        <p className="fleet-facts">
          <span>{fleet.data.deviceType}</span>
          <span>
            Release:{' '}
            {fleet.data.targetRelease ? (
              <>
                {fleet.data.targetRelease.version} <code>{short(fleet.data.targetRelease.commit)}</code>
                {fleet.data.pinnedRelease !== null && ' (pinned)'}
              </>
            ) : (
              'none yet'
            )}
          </span>
          <Link to={`/fleets/${encodeURIComponent(slug)}/releases`}>Releases</Link>
          <span aria-live="polite">
            {rows.total === null
              ? 'Counting devices…'
              : `${rows.total} ${rows.total === 1 ? 'device matches' : 'devices match'}`}
          </span>
        </p>
      )}
      {fleet.data && <RolloutNotice fleet={fleet.data} />}
      <DeviceFiltersBar filters={filters} releases={releases.data?.items ?? []} onChange={setFilters} />
      <ErrorText error={rows.error} />
      {rows.total === 0 ? (
        <p className="page-status">No device matches.</p>
      ) : (
        <DeviceTable
          rows={rows}
          sort={filters.sort}
          onSort={(sort) => setFilters({ ...filters, sort })}
          resultKey={filtersKey(slug, filters)}
          now={now}
        />
      )}
      {fleet.data && <FleetWindow fleet={fleet.data} canWrite={canWrite} onChanged={fleet.reload} />}
      {fleet.data && role !== undefined && (
        <FleetOs key={slug} fleet={fleet.data} canWrite={role} onChanged={fleet.reload} changes={fleetChanges} />
      )}
      {fleet.data && <ConfigJsonPanel fleet={fleet.data} />}
    </section>
  );
}
