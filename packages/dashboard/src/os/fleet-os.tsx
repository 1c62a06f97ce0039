import type { Fleet, OsRollout } from '@flotilla/protocol';
import { useEffect } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useNow } from '../ui/use-now.js';
import { FleetOsInstall } from './fleet-os-install.js';
import { FleetOsRollout } from './fleet-os-rollout.js';
import { useOsReleasesFor } from './use-os-releases.js';
import { useOsRollout } from './use-os-rollout.js';

/**
 * The fleet's host OS: its OS target, its latest staged OS rollout (followed while it runs), and for members and
 * admins the install of an OS release of the fleet's device type, all at once or staged. Observers get the facts and
 * the rollout with no control, and a line saying their role only reads (the server refuses their writes anyway).
 */
export function FleetOs({
  fleet,
  canWrite,
  onChanged,
  changes,
}: {
  fleet: Fleet;
  canWrite: boolean;
  /** The fleet is asked again after an install: its `targetOs` changed. */
  onChanged: () => void;
  /** Counts the fleet stream's `fleet-changed` events: each one asks for the OS rollout again too. */
  changes: number;
}) {
  const releases = useOsReleasesFor(fleet.organization, fleet.deviceType);
  const items = releases.data?.items;
  const rollout = useOsRollout(fleet.slug, fleet.osRollout !== null);
  const reload = rollout.reload;
  useEffect(() => {
    if (changes > 0) reload();
  }, [changes, reload]);
  const now = useNow(10_000);
  const staged = (r: OsRollout) => {
    rollout.mutate(() => r);
    // The fleet's `osRollout` names it now: a fleet that had none starts asking for it.
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
      {(releases.error ?? rollout.error) !== undefined && (
        <p className="error" role="alert">
          {describeError(releases.error ?? rollout.error)}
        </p>
      )}
      {rollout.data && <FleetOsRollout rollout={rollout.data} canWrite={canWrite} now={now} onChanged={staged} />}
      {!canWrite ? (
        <p className="muted">Your role in this fleet's organization only reads: you cannot install an OS.</p>
      ) : (
        <FleetOsInstall
          fleet={fleet}
          releases={items}
          onInstalled={onChanged}
          onStaged={staged}
          current={rollout.data}
        />
      )}
    </section>
  );
}
