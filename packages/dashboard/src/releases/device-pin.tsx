import { type Device, type Release, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useResource } from '../api/use-resource.js';
import { useApi } from '../auth/session.js';
import { pinDevice, pinnedWords } from '../devices/pin-device.js';
import { ErrorText } from '../ui/error-text.js';
import { short } from '../ui/format.js';
import { useDebounced } from '../ui/use-debounced.js';

/** Devices offered at once: a fleet of thousands is searched, not listed. */
const SHOWN = 20;

/** Pins one device of the fleet, found by name, UUID or tag, to this release, or lets it follow the fleet again. */
export function DevicePin({ release }: { release: Release }) {
  const api = useApi();
  const [search, setSearch] = useState('');
  const query = useDebounced(search.trim(), 300);
  const devices = useResource(`pin-devices:${release.fleet}:${query}`, () =>
    api.call(USER_ROUTES.listDevices, {
      query: { fleet: release.fleet, sort: 'name', limit: SHOWN, ...(query ? { search: query } : {}) },
    }),
  );
  const [chosen, setChosen] = useState('');
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const [busy, setBusy] = useState(false);
  const items = devices.data?.items ?? [];
  const device = items.find((d) => d.uuid === chosen) ?? items[0];

  const pin = async (event: FormEvent, target: Device, to: string | null) => {
    event.preventDefault();
    setBusy(true);
    setMessage(null);
    try {
      const changed = await pinDevice(api, target.uuid, to);
      devices.mutate(
        (page) => page && { ...page, items: page.items.map((d) => (d.uuid === changed.uuid ? changed : d)) },
      );
      // And asked again: a search answered before this change (the debounced one typed just before) must not put
      // the device back on screen as it was.
      devices.reload();
      setMessage({ text: `${changed.name}: ${pinnedWords(changed.pinnedRelease)}`, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };
  const pinnedHere = device?.pinnedRelease === release.commit;

  return (
    <section className="card" aria-labelledby="device-pin-title">
      <h2 id="device-pin-title">Pin a device</h2>
      <form className="pin-device" onSubmit={(e) => device && pin(e, device, release.commit)}>
        <label htmlFor="pin-device-search">Find a device</label>
        <input
          id="pin-device-search"
          type="search"
          placeholder="Name, UUID or tag"
          maxLength={100}
          value={search}
          onChange={(e) => setSearch(e.target.value)}
        />
        <label htmlFor="pin-device-choice">Device</label>
        <select
          id="pin-device-choice"
          value={device?.uuid ?? ''}
          onChange={(e) => setChosen(e.target.value)}
          disabled={items.length === 0}
        >
          {items.length === 0 && <option value="">{devices.loading ? 'Searching…' : 'No device matches'}</option>}
          {items.map((d) => (
            <option key={d.uuid} value={d.uuid}>
              {d.name} ({short(d.uuid)}){d.pinnedRelease === null ? '' : `, pinned to ${short(d.pinnedRelease)}`}
            </option>
          ))}
        </select>
        {devices.data && devices.data.total > items.length && (
          <p className="muted pin-device-more">
            {items.length} of {devices.data.total} devices shown: search to find others.
          </p>
        )}
        <div className="button-row">
          <button type="submit" disabled={!device || busy || pinnedHere || release.status !== 'success'}>
            Pin the device to this release
          </button>
          <button
            type="button"
            disabled={!device || busy || device.pinnedRelease === null}
            onClick={(e) => device && pin(e, device, null)}
          >
            Unpin the device
          </button>
        </div>
      </form>
      <ErrorText error={devices.error} />
      <div aria-live="polite">{message && <p className={message.ok ? 'success' : 'error'}>{message.text}</p>}</div>
    </section>
  );
}
