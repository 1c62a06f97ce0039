import type { Device } from '@flotilla/protocol';
import { Link } from 'react-router';
import { type Fact, FactList } from '../ui/fact-list.js';
import { describeUpdateWindow, formatUsage, short, timeAgo } from '../ui/format.js';
import { StatusBadge } from '../ui/status-badge.js';

/** What the device is and runs, as a description list (reads well to a screen reader and on a phone). */
export function DeviceFacts({ device, now }: { device: Device; now: number }) {
  const facts: Fact[] = [
    ['Status', <StatusBadge key="s" device={device} />],
    [
      'Fleet',
      <Link key="f" to={`/fleets/${encodeURIComponent(device.fleet)}`}>
        {device.fleet}
      </Link>,
    ],
    ['Release running', <code key="r">{short(device.runningRelease)}</code>],
    ['Release target', <code key="t">{short(device.targetRelease)}</code>],
    [
      'Pinned to',
      device.pinnedRelease === null ? 'the fleet’s release' : <code key="p">{short(device.pinnedRelease)}</code>,
    ],
    ['Update window', describeUpdateWindow(device)],
    ['Device type', device.deviceType],
    ['OS', [device.osVersion, device.osVariant].filter(Boolean).join(' ') || '—'],
    ['Agent', device.agentVersion ?? '—'],
    ['IP address', device.ipAddress ?? '—'],
    ['MAC address', device.macAddress ?? '—'],
    [
      'Last seen',
      device.lastSeenAt ? (
        <time key="l" dateTime={device.lastSeenAt}>
          {timeAgo(device.lastSeenAt, now)}
        </time>
      ) : (
        'never'
      ),
    ],
    ...(device.rollback
      ? ([
          [
            'Rolled back',
            <span key="rb">
              {`from ${short(device.rollback.fromCommit)} to ${short(device.rollback.toCommit)}` +
                `${device.rollback.service ? ` (service ${device.rollback.service})` : ''}: ${device.rollback.reason}; ` +
                `refuses ${short(device.rollback.fromCommit)} until a new release, a pin or a forced update`}
              {device.rollback.logs.length > 0 && <pre>{device.rollback.logs.join('\n')}</pre>}
            </span>,
          ],
        ] satisfies Fact[])
      : []),
    [
      'UUID',
      <code key="u" className="uuid">
        {device.uuid}
      </code>,
    ],
  ];
  const m = device.metrics;
  const metrics: [string, string | null][] = [
    ['CPU', m.cpuUsage === null ? null : `${Math.round(m.cpuUsage)} %`],
    ['Temperature', m.cpuTemp === null ? null : `${Math.round(m.cpuTemp)} °C`],
    ['Memory', formatUsage(m.memoryUsage, m.memoryTotal)],
    ['Storage', formatUsage(m.storageUsage, m.storageTotal)],
  ];
  const shown = metrics.filter((entry): entry is [string, string] => entry[1] !== null);
  return (
    <div className="area-facts">
      <FactList facts={facts} />
      {shown.length > 0 && (
        <section aria-labelledby="metrics-title">
          <h2 id="metrics-title">Resources</h2>
          <FactList facts={shown} className="metrics" />
        </section>
      )}
    </div>
  );
}
