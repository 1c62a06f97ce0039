import type { DeviceStatusFilter, FleetCounts as Figures } from '@flotilla/protocol';
import { Link } from 'react-router';
import { STATUS_LABELS } from '../devices/device-status.js';

const STATES: DeviceStatusFilter[] = ['online', 'updating', 'failed', 'offline'];

/** A fleet's devices by state, each a link to the fleet's table filtered by it; the figures come live. */
export function FleetCounts({ slug, counts }: { slug: string; counts: Figures | undefined }) {
  if (!counts) return <span className="muted">…</span>;
  const base = `/fleets/${encodeURIComponent(slug)}`;
  return (
    <span className="counts">
      <Link to={base}>{counts.total} in all</Link>
      {STATES.filter((state) => counts[state] > 0).map((state) => (
        <Link key={state} to={`${base}?status=${state}`} className={`badge badge-${state}`}>
          {counts[state]} {STATUS_LABELS[state].toLowerCase()}
        </Link>
      ))}
    </span>
  );
}
