import { USER_ROUTES } from '@flotilla/protocol';
import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { useCanWrite } from '../auth/use-can-write.js';
import { LogView } from '../logs/log-view.js';
import { DevicePublicUrl } from '../remote/device-public-url.js';
import { TerminalPanel } from '../terminal/terminal-panel.js';
import { ErrorText } from '../ui/error-text.js';
import { DeviceOs } from '../os/device-os.js';
import { LiveIndicator } from '../ui/live-indicator.js';
import { useNow } from '../ui/use-now.js';
import { DeviceWindow } from '../windows/device-window.js';
import { DeviceActions } from './device-actions.js';
import { DeviceFacts } from './device-facts.js';
import { DeviceMove } from './device-move.js';
import { DeviceServices } from './device-services.js';
import { DeviceSettings } from './device-settings.js';
import { DeviceTags } from './device-tags.js';
import { useDeviceActions } from './use-device-actions.js';
import { useFleetEvents } from './use-fleet-events.js';

export function DevicePage() {
  const { uuid: ref = '' } = useParams();
  const api = useApi();
  const device = useResource(`device:${ref}`, () => api.call(USER_ROUTES.getDevice, { params: { uuid: ref } }));
  const [removed, setRemoved] = useState(false);
  const d = device.data;
  const uuid = d?.uuid ?? ref;
  const live = useFleetEvents(d?.fleet ?? null, {
    onDevice: (changed) => {
      if (changed.uuid === uuid) device.mutate(() => changed);
    },
    onRemoved: (gone) => {
      // Gone from this fleet: deleted, or moved to another fleet (then it is shown there, and followed there).
      if (gone === uuid)
        api.call(USER_ROUTES.getDevice, { params: { uuid } }).then(
          (moved) => device.mutate(() => moved),
          () => setRemoved(true),
        );
    },
    // A deploy or a pin of the fleet moves an unpinned device's release; a fleet's OS target (also `fleet-changed`)
    // moves a pinned device's too, and the event does not say which it was: the device is asked again either way.
    onFleetChanged: device.reload,
    onReconnected: device.reload,
  });
  // Observers get the page without its controls (shown only once the role is known to allow them). Keyed by the
  // device, not its fleet: a move stays within the organization, and the controls must not blink out during one.
  const organization = useResource(d ? `device-organization:${d.uuid}` : null, async () => {
    const fleet = await api.call(USER_ROUTES.getFleet, { params: { slug: d?.fleet ?? '' } });
    return fleet.organization;
  });
  const role = useCanWrite(organization.data);
  const canWrite = role === true;
  const actions = useDeviceActions(uuid);
  const now = useNow();

  return (
    <section className="device-page" aria-labelledby="device-title">
      <div className="page-head">
        <p className="crumbs">
          <Link to="/fleets">Fleets</Link> /{' '}
          {d && (
            <>
              <Link to={`/fleets/${encodeURIComponent(d.fleet)}`}>{d.fleet}</Link> /
            </>
          )}
        </p>
        <h1 id="device-title">{d?.name ?? ref}</h1>
        {d && <LiveIndicator state={live} />}
      </div>
      <ErrorText error={device.error} />
      {removed && (
        <p className="error" role="alert">
          This device was deleted.
        </p>
      )}
      {!d && device.loading && <p className="page-status">Loading the device…</p>}
      {d && (
        // INVARIANT: the DOM order is the phone's one-column order (and so the tab order on every screen); the wide
        // layout only places these areas in two columns (styles.css, .device-grid).
        <div className="device-grid">
          <DeviceFacts device={d} now={now} />
          {canWrite && <DeviceActions deviceName={d.name} results={actions.results} onAction={actions.run} />}
          <DeviceServices device={d} onAction={canWrite ? actions.run : undefined} />
          <LogView uuid={d.uuid} services={Object.keys(d.services).sort()} />
          {canWrite && <TerminalPanel uuid={d.uuid} services={Object.keys(d.services).sort()} />}
          <div className="area-more">
            <section aria-labelledby="variables-link-title">
              <h2 id="variables-link-title">Variables</h2>
              <p>
                <Link to={`/devices/${encodeURIComponent(d.uuid)}/variables`}>Variables and configuration</Link>: what
                each service inherits from the fleet, and the device's own values.
              </p>
            </section>
            <DeviceTags uuid={d.uuid} />
            <DevicePublicUrl uuid={d.uuid} canWrite={canWrite} />
            <DeviceWindow device={d} canWrite={canWrite} onChanged={(changed) => device.mutate(() => changed)} />
            <DeviceOs
              key={d.uuid}
              device={d}
              organization={organization.data ?? null}
              canWrite={role}
              onChanged={(changed) => device.mutate(() => changed)}
            />
            {canWrite && (
              <>
                <DeviceSettings key={d.uuid} device={d} onChanged={(changed) => device.mutate(() => changed)} />
                <DeviceMove device={d} onChanged={(changed) => device.mutate(() => changed)} />
              </>
            )}
          </div>
        </div>
      )}
    </section>
  );
}
