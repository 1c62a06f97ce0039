import { type DeviceStatusFilter, USER_ROUTES } from '@flotilla/protocol';
import { Link } from 'react-router';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { STATUS_LABELS } from '../devices/device-status.js';

const STATES: DeviceStatusFilter[] = ['online', 'updating', 'failed', 'offline'];

/**
 * A fleet's devices by state: one `limit=1` page per state read for its `total`, so the count costs the server a
 * count query, not a list of the fleet's devices.
 */
export function FleetCounts({ slug }: { slug: string }) {
  const api = useApi();
  const counts = useResource(`counts:${slug}`, async () => {
    const count = (status?: DeviceStatusFilter) =>
      api
        .call(USER_ROUTES.listDevices, { query: { fleet: slug, limit: 1, ...(status ? { status } : {}) } })
        .then((page) => page.total);
    const [total, ...byState] = await Promise.all([count(), ...STATES.map((state) => count(state))]);
    return { total: total ?? 0, byState: STATES.map((state, i) => [state, byState[i] ?? 0] as const) };
  });
  if (counts.error) return <span className="error">{describeError(counts.error)}</span>;
  if (!counts.data) return <span className="muted">…</span>;
  const base = `/fleets/${encodeURIComponent(slug)}`;
  return (
    <span className="counts">
      <Link to={base}>{counts.data.total} in all</Link>
      {counts.data.byState
        .filter(([, n]) => n > 0)
        .map(([state, n]) => (
          <Link key={state} to={`${base}?status=${state}`} className={`badge badge-${state}`}>
            {n} {STATUS_LABELS[state].toLowerCase()}
          </Link>
        ))}
    </span>
  );
}
