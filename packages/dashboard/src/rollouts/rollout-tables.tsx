import { useId } from 'react';
import { Link } from 'react-router';
import { timeAgo } from '../ui/format.js';
import { deviceStateTone, type StagedRollout, waitsToBuild } from './rollout-words.js';

const COUNTS = ['pending', 'succeeded', 'failed', 'offline', 'excused'] as const;

/** Each batch with how many of its devices are in each state; the open ones say when they opened. */
export function BatchTable({
  rollout,
  now,
  caption = 'Batches',
}: {
  rollout: StagedRollout;
  now: number;
  caption?: string;
}) {
  return (
    <div className="table-scroll">
      <table className="data stacked rollout-batches">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Batch</th>
            <th scope="col">Opened</th>
            <th scope="col">Devices</th>
            {COUNTS.map((c) => (
              <th key={c} scope="col">
                {c[0]?.toUpperCase() + c.slice(1)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rollout.batches.map((batch) => (
            <tr key={batch.index}>
              <th scope="row">
                {batch.index + 1}. {batch.label}
                {batch.index === rollout.currentBatch && !waitsToBuild(rollout) && <span className="tag">current</span>}
              </th>
              <td data-label="Opened">
                {batch.opened && batch.openedAt ? (
                  <time dateTime={batch.openedAt} title={batch.openedAt}>
                    {timeAgo(batch.openedAt, now)}
                  </time>
                ) : (
                  'not yet'
                )}
              </td>
              <td data-label="Devices">{batch.devices}</td>
              {COUNTS.map((c) => (
                <td key={c} data-label={c[0]?.toUpperCase() + c.slice(1)}>
                  {batch[c]}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Every device of the rollout with its batch and state, a failed one with why. */
export function RolloutDeviceTable({ rollout, caption = 'Devices' }: { rollout: StagedRollout; caption?: string }) {
  const labels = new Map(rollout.batches.map((b) => [b.index, `${b.index + 1}. ${b.label}`]));
  return (
    <div className="table-scroll">
      <table className="data stacked rollout-devices">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Batch</th>
            <th scope="col">State</th>
            <th scope="col">Reason</th>
          </tr>
        </thead>
        <tbody>
          {rollout.devices.map((device) => (
            <tr key={device.uuid}>
              <th scope="row">
                <Link to={`/devices/${encodeURIComponent(device.uuid)}`}>{device.name}</Link>
              </th>
              <td data-label="Batch">{labels.get(device.batch) ?? device.batch + 1}</td>
              <td data-label="State">
                <span className={`badge badge-${deviceStateTone(device.state)}`}>{device.state}</span>
              </td>
              <td data-label="Reason">{device.reason ?? <span className="muted">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** What happened, oldest first, as the server recorded it; `level` 3 inside a page's section. */
export function RolloutEvents({
  rollout,
  title = 'Events',
  level = 2,
}: {
  rollout: StagedRollout;
  title?: string;
  level?: 2 | 3;
}) {
  const id = useId();
  const Heading = level === 2 ? 'h2' : 'h3';
  return (
    <section aria-labelledby={id}>
      <Heading id={id}>{title}</Heading>
      <ol className="rollout-events">
        {rollout.events.map((event, i) => (
          // The events are append-only: an index is a stable key.
          // biome-ignore lint/suspicious/noArrayIndexKey: see above
          <li key={i}>
            <time dateTime={event.at}>{event.at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}</time>{' '}
            <span className="tag">{event.kind}</span> {event.message}
          </li>
        ))}
      </ol>
    </section>
  );
}
