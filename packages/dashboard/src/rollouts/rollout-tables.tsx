import type { Rollout } from '@flotilla/protocol';
import { Link } from 'react-router';
import { timeAgo } from '../ui/format.js';
import { deviceStateTone } from './rollout-words.js';

const COUNTS = ['pending', 'succeeded', 'failed', 'offline', 'excused'] as const;

/** Each batch with how many of its devices are in each state; the open ones say when they opened. */
export function BatchTable({ rollout, now }: { rollout: Rollout; now: number }) {
  return (
    <div className="table-scroll">
      <table className="data stacked rollout-batches">
        <caption>Batches</caption>
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
                {batch.index === rollout.currentBatch && !rollout.waiting && <span className="tag">current</span>}
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
export function RolloutDeviceTable({ rollout }: { rollout: Rollout }) {
  const labels = new Map(rollout.batches.map((b) => [b.index, `${b.index + 1}. ${b.label}`]));
  return (
    <div className="table-scroll">
      <table className="data stacked rollout-devices">
        <caption>Devices</caption>
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

/** What happened, oldest first, as the server recorded it. */
export function RolloutEvents({ rollout }: { rollout: Rollout }) {
  return (
    <section aria-labelledby="rollout-events-title">
      <h2 id="rollout-events-title">Events</h2>
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
