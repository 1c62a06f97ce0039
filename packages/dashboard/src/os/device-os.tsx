import { type Device, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useApi } from '../auth/session.js';
import { type Fact, FactList } from '../ui/fact-list.js';
import { describeOsUpdate } from './os-update-words.js';
import { useOsReleasesFor } from './use-os-releases.js';

export interface DeviceOsProps {
  device: Device;
  /** The device's organization (handle); null until known. */
  organization: string | null;
  /** Whether the user may change things in the device's organization; undefined until known. */
  canWrite: boolean | undefined;
  onChanged(device: Device): void;
}

/**
 * The device's host OS: what it runs (its os-release's PRETTY_NAME), the version it is told to run, where its A/B
 * update stands and how the last one ended, as the device reported them; and, for those who may change things, the
 * choice of an OS release of its device type to install.
 */
export function DeviceOs({ device, organization, canWrite, onChanged }: DeviceOsProps) {
  const api = useApi();
  const releases = useOsReleasesFor(canWrite === true ? organization : null, device.deviceType);
  const [chosen, setChosen] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const update = describeOsUpdate(device.osUpdate);
  const facts: Fact[] = [
    ['Running', device.osVersion ?? 'not reported'],
    ['Target', device.targetOs === null ? 'none set: the device keeps its OS' : `OS ${device.targetOs}`],
  ];
  if (update.progressText !== null)
    facts.push([
      'Update',
      <span key="u" className="os-progress">
        {update.percent === null ? update.progressText : `${update.progressText}: ${update.percent} %`}
        {update.percent !== null && <progress max={100} value={update.percent} aria-label="Image written" />}
      </span>,
    ]);
  if (update.result !== null)
    facts.push([
      'Last update',
      <span key="r" className={update.failed ? 'error' : undefined}>
        {update.result}
      </span>,
    ]);

  const install = async (event: FormEvent) => {
    event.preventDefault();
    if (chosen === '') return;
    setBusy(true);
    setMessage(null);
    try {
      const answer = await api.call(USER_ROUTES.setDeviceOs, {
        params: { uuid: device.uuid },
        body: { version: chosen },
      });
      onChanged(await api.call(USER_ROUTES.getDevice, { params: { uuid: device.uuid } }));
      setMessage({ text: `The device is told to run OS ${answer.version}.`, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="host-os" aria-labelledby="host-os-title">
      <h2 id="host-os-title">Host OS</h2>
      <FactList facts={facts} />
      {canWrite === false && (
        <p className="muted">Your role in this device's organization only reads: you cannot install an OS.</p>
      )}
      {canWrite === true && (
        <>
          <form className="inline-form" aria-label="Install a host OS on the device" onSubmit={install}>
            <label htmlFor="device-os-version">OS release</label>
            <select
              id="device-os-version"
              value={chosen}
              onChange={(e) => setChosen(e.target.value)}
              disabled={!releases.data}
            >
              <option value="">
                {releases.data?.items.length === 0 ? `none for ${device.deviceType}` : 'Choose a version'}
              </option>
              {releases.data?.items.map((release) => (
                <option key={release.id} value={release.version}>
                  {release.version}
                </option>
              ))}
            </select>
            <button type="submit" disabled={busy || chosen === '' || chosen === device.targetOs}>
              Install OS
            </button>
          </form>
          <div aria-live="polite">
            {message && (
              <p className={message.ok ? 'success' : 'error'} role={message.ok ? undefined : 'alert'}>
                {message.text}
              </p>
            )}
          </div>
        </>
      )}
      {releases.error !== undefined && <p className="error">{describeError(releases.error)}</p>}
    </section>
  );
}
