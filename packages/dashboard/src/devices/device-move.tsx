import { type Device, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useId, useState } from 'react';
import { Link } from 'react-router';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';

/**
 * Moves the device to another fleet of its organization (`PATCH /devices/:uuid {fleet}`; the server refuses a fleet
 * of another organization). The answer replaces the device shown (`onChanged`), and the page follows the new fleet.
 */
export function DeviceMove({ device, onChanged }: { device: Device; onChanged(device: Device): void }) {
  const api = useApi();
  const fleets = useResource('fleets', () => api.call(USER_ROUTES.listFleets));
  const [target, setTarget] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ text: string; ok: boolean; fleet?: string } | null>(null);
  const pickerId = useId();
  const current = fleets.data?.items.find((f) => f.slug === device.fleet);
  // Only the fleets of the device's organization can take it; the server says so too.
  const others = (fleets.data?.items ?? []).filter(
    (f) => f.slug !== device.fleet && (current === undefined || f.organization === current.organization),
  );

  const move = async (event: FormEvent) => {
    event.preventDefault();
    setMessage(null);
    setBusy(true);
    try {
      const moved = await api.call(USER_ROUTES.updateDevice, {
        params: { uuid: device.uuid },
        body: { fleet: target },
      });
      onChanged(moved);
      setTarget('');
      setMessage({ text: `Moved to ${moved.fleet}.`, ok: true, fleet: moved.fleet });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="inline-form" onSubmit={move} aria-label="Move to another fleet">
      <label htmlFor={pickerId}>Move to fleet</label>
      <select id={pickerId} value={target} onChange={(e) => setTarget(e.target.value)} disabled={others.length === 0}>
        <option value="">{others.length === 0 ? 'No other fleet' : 'Choose a fleet'}</option>
        {others.map((fleet) => (
          <option key={fleet.id} value={fleet.slug}>
            {fleet.name} ({fleet.slug}, {fleet.deviceType})
          </option>
        ))}
      </select>
      <button type="submit" disabled={target === '' || busy}>
        Move
      </button>
      <span aria-live="polite">
        {message && (
          <span className={message.ok ? 'success' : 'error'}>
            {message.text}{' '}
            {message.fleet && <Link to={`/fleets/${encodeURIComponent(message.fleet)}`}>Open that fleet</Link>}
          </span>
        )}
      </span>
    </form>
  );
}
