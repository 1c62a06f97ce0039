import { type Fleet, USER_ROUTES } from '@flotilla/protocol';
import { type FormEvent, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useApi } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { useOsReleasesFor } from './use-os-releases.js';

/**
 * Tells every device of the fleet's device type to run an OS release (`PUT /fleets/:slug/os`), after a confirmation:
 * each of them writes it and reboots into it. Says how many devices the server told. Observers get a line saying
 * their role only reads instead of the form, and nothing is asked for them (the server refuses their write anyway).
 */
export function FleetOs({
  fleet,
  canWrite,
  onChanged,
}: {
  fleet: Fleet;
  canWrite: boolean;
  /** The fleet is asked again after an install: its `targetOs` changed. */
  onChanged: () => void;
}) {
  const api = useApi();
  const releases = useOsReleasesFor(canWrite ? fleet.organization : null, fleet.deviceType);
  const [chosen, setChosen] = useState('');
  const [asking, setAsking] = useState(false);
  const [done, setDone] = useState<string | null>(null);
  const items = releases.data?.items;

  const ask = (event: FormEvent) => {
    event.preventDefault();
    if (chosen !== '') setAsking(true);
  };
  const install = async () => {
    setDone(null);
    const answer = await api.call(USER_ROUTES.setFleetOs, { params: { slug: fleet.slug }, body: { version: chosen } });
    const n = answer.devices.length;
    setDone(`${n} ${n === 1 ? 'device' : 'devices'} of type ${answer.deviceType} told to run OS ${answer.version}.`);
    onChanged();
  };

  return (
    <section className="host-os" aria-labelledby="fleet-os-title">
      <h2 id="fleet-os-title">Host OS</h2>
      <p>
        {fleet.targetOs
          ? `The fleet's OS: ${fleet.targetOs.version} (${fleet.targetOs.deviceType}); a device registered now starts with it.`
          : 'The fleet has no OS target: its devices keep the OS they run.'}
      </p>
      {!canWrite ? (
        <p className="muted">Your role in this fleet's organization only reads: you cannot install an OS.</p>
      ) : (
        <>
          <p>
            Install an OS release of the fleet's device type ({fleet.deviceType}) on every device of that type in the
            fleet.
          </p>
          {releases.error !== undefined && (
            <p className="error" role="alert">
              {describeError(releases.error)}
            </p>
          )}
          <form className="inline-form" aria-label="Install a host OS on the fleet" onSubmit={ask}>
            <label htmlFor="fleet-os-version">OS release</label>
            <select id="fleet-os-version" value={chosen} onChange={(e) => setChosen(e.target.value)} disabled={!items}>
              <option value="">{items?.length === 0 ? `none for ${fleet.deviceType}` : 'Choose a version'}</option>
              {items?.map((release) => (
                <option key={release.id} value={release.version}>
                  {release.version}
                </option>
              ))}
            </select>
            <button type="submit" disabled={chosen === ''}>
              Install on the fleet…
            </button>
          </form>
          <div aria-live="polite">{done && <p className="success">{done}</p>}</div>
        </>
      )}
      {asking && (
        <ConfirmDialog
          title={`Install OS ${chosen} on fleet ${fleet.name}?`}
          confirmLabel="Install OS"
          onConfirm={install}
          onClose={() => setAsking(false)}
        >
          <p>
            Every {fleet.deviceType} device of the fleet writes it to its inactive slot and reboots into it; one that
            does not come up healthy goes back to the OS it runs now.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
