import { type Fleet, type Release, USER_ROUTES } from '@flotilla/protocol';
import { useState } from 'react';
import { useApi } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { short } from '../ui/format.js';

type Asking = 'pin' | 'unpin' | null;

/**
 * Pins the fleet to this release, or unpins it (devices then follow the latest successful release). Both change what
 * every device of the fleet that is not pinned itself runs, so each asks first.
 */
export function FleetPin({ release, fleet, onChanged }: { release: Release; fleet: Fleet; onChanged(f: Fleet): void }) {
  const api = useApi();
  const [asking, setAsking] = useState<Asking>(null);
  const [done, setDone] = useState<string | null>(null);
  const pinnedHere = fleet.pinnedRelease === release.commit;
  const runsHere = fleet.targetRelease?.commit === release.commit;
  const update = async (pinnedRelease: string | null, words: string) => {
    setDone(null);
    onChanged(await api.call(USER_ROUTES.updateFleet, { params: { slug: fleet.slug }, body: { pinnedRelease } }));
    setDone(words);
  };

  return (
    <section className="card" aria-labelledby="fleet-pin-title">
      <h2 id="fleet-pin-title">Fleet {fleet.name}</h2>
      <p>
        {pinnedHere
          ? 'The fleet is pinned to this release: its devices run it unless pinned themselves.'
          : fleet.pinnedRelease !== null
            ? `The fleet is pinned to another release (${short(fleet.pinnedRelease)}).`
            : runsHere
              ? 'The fleet follows its latest successful release, which is this one.'
              : 'The fleet follows its latest successful release.'}
      </p>
      {release.status !== 'success' && <p className="muted">Only a successful release can be pinned.</p>}
      <div className="button-row">
        <button
          type="button"
          className="primary"
          disabled={pinnedHere || release.status !== 'success'}
          onClick={() => setAsking('pin')}
        >
          Pin the fleet to this release
        </button>
        <button type="button" disabled={fleet.pinnedRelease === null} onClick={() => setAsking('unpin')}>
          Unpin the fleet
        </button>
      </div>
      <div aria-live="polite">{done && <p className="success">{done}</p>}</div>
      {asking === 'pin' && (
        <ConfirmDialog
          title={`Pin fleet ${fleet.name} to ${release.version}?`}
          confirmLabel="Pin the fleet"
          onConfirm={() => update(release.commit, `The fleet is pinned to ${release.version}.`)}
          onClose={() => setAsking(null)}
        >
          <p>Every device of the fleet that is not pinned itself will run this release, and stay on it.</p>
        </ConfirmDialog>
      )}
      {asking === 'unpin' && (
        <ConfirmDialog
          title={`Unpin fleet ${fleet.name}?`}
          confirmLabel="Unpin the fleet"
          onConfirm={() => update(null, 'The fleet follows its latest successful release.')}
          onClose={() => setAsking(null)}
        >
          <p>Its devices that are not pinned themselves will run the fleet's latest successful release.</p>
        </ConfirmDialog>
      )}
    </section>
  );
}
