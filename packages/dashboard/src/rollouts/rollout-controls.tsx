import { type ReactNode, useId, useState } from 'react';
import { describeError } from '../api/dashboard-api.js';
import { ConfirmDialog } from '../ui/confirm-dialog.js';
import { isActive, type StagedRollout } from './rollout-words.js';

export type RolloutAction = 'pause' | 'resume' | 'abort';

/** What differs between a release's rollout and an OS one: the calls and the words of the abort. */
export interface RolloutControlsProps<T extends StagedRollout> {
  rollout: T;
  /** Calls the server; answers the rollout as it is after the action. */
  act(action: RolloutAction): Promise<T>;
  onChanged(rollout: T): void;
  /** `Abort the rollout of 1.2.3?` */
  abortTitle: string;
  /** What an abort does, in the confirmation. */
  abortWhat: ReactNode;
  /** Said once it is aborted. */
  abortedText: string;
  /** The section's heading (level 2 on a rollout's page, 3 inside another section). */
  title?: string;
  level?: 2 | 3;
}

/**
 * Pause, resume and abort for those who may change the fleet. Abort undoes work on devices, so it asks first. The
 * server decides what is allowed (ROLLOUT_STATE otherwise); the buttons only leave out what cannot apply.
 */
export function RolloutControls<T extends StagedRollout>({
  rollout,
  act,
  onChanged,
  abortTitle,
  abortWhat,
  abortedText,
  title = 'Control',
  level = 2,
}: RolloutControlsProps<T>) {
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ text: string; ok: boolean } | null>(null);
  const [aborting, setAborting] = useState(false);
  const titleId = useId();
  const Heading = level === 2 ? 'h2' : 'h3';
  const run = async (action: 'pause' | 'resume', done: string) => {
    setBusy(true);
    setMessage(null);
    try {
      onChanged(await act(action));
      setMessage({ text: done, ok: true });
    } catch (e) {
      setMessage({ text: describeError(e), ok: false });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" aria-labelledby={titleId}>
      <Heading id={titleId}>{title}</Heading>
      <div className="button-row">
        <button
          type="button"
          disabled={busy || rollout.status !== 'running'}
          onClick={() => run('pause', 'Paused: no further batch opens.')}
        >
          Pause
        </button>
        <button
          type="button"
          className="primary"
          disabled={busy || rollout.status !== 'paused'}
          onClick={() => run('resume', 'Resumed: the failures that paused it no longer count.')}
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
          title={abortTitle}
          confirmLabel="Abort the rollout"
          onConfirm={async () => {
            onChanged(await act('abort'));
            setMessage({ text: abortedText, ok: true });
          }}
          onClose={() => setAborting(false)}
        >
          {abortWhat}
        </ConfirmDialog>
      )}
    </section>
  );
}
