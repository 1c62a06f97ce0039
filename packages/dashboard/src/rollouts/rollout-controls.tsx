import { type Rollout, USER_ROUTES } from '@flotilla/protocol';
import { useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { useApi } from '../auth/session.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { short } from '../ui/format.js';
import { isActive } from './rollout-words.js';

/**
 * Pause, resume and abort for those who may change the fleet. Abort sends every device back, so it asks first. The
 * server decides what is allowed (ROLLOUT_STATE otherwise); the buttons only leave out what cannot apply.
 */
export function RolloutControls({ rollout, onChanged }: { rollout: Rollout; onChanged(r: Rollout): void }) {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const [aborting, setAborting] = useState(false);
  const params = { params: { slug: rollout.fleet } };
  const act = async (route: typeof USER_ROUTES.pauseRollout | typeof USER_ROUTES.resumeRollout, done: string) => {
    setBusy(true);
    setMessage(null);
    try {
      onChanged(await api.call(route, params));
      setMessage({ text: done, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };
  const back = rollout.previousRelease
    ? `${rollout.previousRelease.version} (${short(rollout.previousRelease.commit)})`
    : 'no release';

  return (
    <section className="card" aria-labelledby="rollout-controls-title">
      <h2 id="rollout-controls-title">Control</h2>
      <div className="button-row">
        <button
          type="button"
          disabled={busy || rollout.status !== 'running'}
          onClick={() => act(USER_ROUTES.pauseRollout, 'Paused: no further batch opens.')}
        >
          Pause
        </button>
        <button
          type="button"
          className="primary"
          disabled={busy || rollout.status !== 'paused'}
          onClick={() => act(USER_ROUTES.resumeRollout, 'Resumed: the failures that paused it no longer count.')}
        >
          Resume
        </button>
        <button
          type="button"
          className="danger"
          disabled={busy || !isActive(rollout.status)}
          onClick={() => setAborting(true)}
        >
          Abort…
        </button>
      </div>
      <div aria-live="polite">
        {message && (
          <p className={message.ok ? 'success' : 'error'} role={message.ok ? undefined : 'alert'}>
            {message.text}
          </p>
        )}
      </div>
      {aborting && (
        <ConfirmDialog
          title={`Abort the rollout of ${rollout.release.version}?`}
          confirmLabel="Abort the rollout"
          onConfirm={async () => {
            onChanged(await api.call(USER_ROUTES.abortRollout, params));
            setMessage({ text: `Aborted: every device goes back to ${back}.`, ok: true });
          }}
          onClose={() => setAborting(false)}
        >
          <p>
            Every device of the fleet that is not pinned itself goes back to the previous release, {back}, including
            those that already run {rollout.release.version}.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
