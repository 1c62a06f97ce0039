import { type Device, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { useNavigate } from 'react-router';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { short } from '../ui/format.js';
import { pinDevice, pinnedWords } from './pin-device.js';

/** Rename, pin to a release of the fleet, delete. Each answer replaces the device shown (`onChanged`). */
export function DeviceSettings({ device, onChanged }: { device: Device; onChanged(device: Device): void }) {
  const api = useApi();
  const navigate = useNavigate();
  const releases = useResource(`releases:${device.fleet}`, () =>
    api.call(USER_ROUTES.listFleetReleases, { params: { slug: device.fleet } }),
  );
  const [name, setName] = useState(device.name);
  const [pin, setPin] = useState(device.pinnedRelease ?? '');
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const [deleting, setDeleting] = useState(false);

  const apply = async (event: FormEvent, change: () => Promise<Device>, done: string) => {
    event.preventDefault();
    setMessage(null);
    try {
      onChanged(await change());
      setMessage({ text: done, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    }
  };
  const save = (event: FormEvent, body: { name?: string; pinnedRelease?: string | null }, done: string) =>
    apply(event, () => api.call(USER_ROUTES.updateDevice, { params: { uuid: device.uuid }, body }), done);
  const successful = (releases.data?.items ?? []).filter((r) => r.status === 'success');
  // A release deployed while the page is open reaches the device (its target) before this list: refetch it, once
  // per such commit, so it can be pinned without a reload.
  const askedFor = useRef<string | null>(null);
  const target = device.targetRelease;
  const known = releases.data?.items.some((r) => r.commit === target) ?? true;
  const reloadReleases = releases.reload;
  useEffect(() => {
    if (known || target === null || askedFor.current === target) return;
    askedFor.current = target;
    reloadReleases();
  }, [known, target, reloadReleases]);

  return (
    <section className="area-settings" aria-labelledby="settings-title">
      <h2 id="settings-title">Settings</h2>
      <form className="inline-form" onSubmit={(e) => save(e, { name: name.trim() }, 'Renamed.')}>
        <label htmlFor="device-name">Name</label>
        <input id="device-name" required maxLength={200} value={name} onChange={(e) => setName(e.target.value)} />
        <button type="submit" disabled={name.trim() === '' || name.trim() === device.name}>
          Rename
        </button>
      </form>
      <form
        className="inline-form"
        onSubmit={(e) => {
          const release = pin === '' ? null : pin;
          return apply(e, () => pinDevice(api, device.uuid, release), pinnedWords(release));
        }}
      >
        <label htmlFor="device-pin">Release</label>
        <select id="device-pin" value={pin} onChange={(e) => setPin(e.target.value)}>
          <option value="">Follow the fleet</option>
          {successful.map((release) => (
            <option key={release.id} value={release.commit}>
              {release.version} ({short(release.commit)})
            </option>
          ))}
        </select>
        <button type="submit" disabled={pin === (device.pinnedRelease ?? '')}>
          Pin
        </button>
      </form>
      <div aria-live="polite">{message && <p className={message.ok ? 'success' : 'error'}>{message.text}</p>}</div>
      <button type="button" className="danger" onClick={() => setDeleting(true)}>
        Delete device
      </button>
      {deleting && (
        <ConfirmDialog
          title={`Delete device ${device.name}?`}
          confirmLabel="Delete device"
          typeToConfirm={device.name}
          onConfirm={async () => {
            await api.call(USER_ROUTES.deleteDevice, { params: { uuid: device.uuid } });
            navigate(`/fleets/${encodeURIComponent(device.fleet)}`);
          }}
          onClose={() => setDeleting(false)}
        >
          <p>Its keys stop working at once; to come back it must be provisioned again.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
