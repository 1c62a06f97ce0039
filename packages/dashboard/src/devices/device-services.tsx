import type { Device, DeviceAction } from '@flotilla/protocol';
import { ACTION_LABELS } from './action-labels.js';
import { short } from '../ui/format.js';

const SERVICE_ACTIONS: DeviceAction[] = ['restart-service', 'stop-service', 'start-service'];

/** The services as the device last reported them, each with its own restart, stop and start (without `onAction`, none). */
export function DeviceServices({
  device,
  onAction,
}: {
  device: Device;
  onAction?: (action: DeviceAction, service: string) => void;
}) {
  const services = Object.entries(device.services).sort(([a], [b]) => a.localeCompare(b));
  return (
    <section className="area-services" aria-labelledby="services-title">
      <h2 id="services-title">Services</h2>
      {services.length === 0 ? (
        <p className="muted">The device reports no service.</p>
      ) : (
        <div className="table-scroll">
          <table className="data stacked">
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Status</th>
                <th scope="col">Release</th>
                <th scope="col">Image</th>
                {onAction && (
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {services.map(([name, service]) => (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td data-label="Status">
                    {service.status}
                    {service.downloadProgress !== null && ` (${Math.round(service.downloadProgress)} %)`}
                  </td>
                  <td data-label="Release">
                    <code>{short(service.releaseCommit)}</code>
                  </td>
                  <td className="image" data-label="Image">
                    <code>{service.image}</code>
                  </td>
                  {onAction && (
                    <td className="row-actions">
                      {SERVICE_ACTIONS.map((action) => (
                        <button key={action} type="button" onClick={() => onAction(action, name)}>
                          {ACTION_LABELS[action]}
                          <span className="visually-hidden"> {name}</span>
                        </button>
                      ))}
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
